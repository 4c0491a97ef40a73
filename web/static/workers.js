// The workers online (GET /api/workers, from their heartbeats): the job page says when
// its job waits with none, the Models page when none serves the model marked serving.
"use strict";
const WORKERS_EVERY_MS = 5000;

async function workersOnline() {
  try {
    return await api("/api/workers");
  } catch (error) {
    return null;  // the broker did not answer: nothing can be said of the workers
  }
}

// The job page: a line while an unfinished job has no worker to read it.
async function watchJobWorkers(notice) {
  while (!ENDED.has(document.getElementById("state").textContent)) {  // job.js's
    const workers = await workersOnline();
    notice.hidden = !(workers && workers.online === 0);
    await new Promise(resolve => setTimeout(resolve, WORKERS_EVERY_MS));
  }
  notice.hidden = true;
}

// The Models page: which versions the workers online serve, and a warning when none
// serves the one marked serving (a worker that cannot load a promoted model keeps its own).
async function showModelWorkers(line) {
  const serving = line.dataset.serving;
  const workers = await workersOnline();
  if (!workers) {
    line.textContent = "The workers cannot be seen: the broker did not answer.";
    return;
  }
  if (!workers.online) {
    line.className = "message error";
    line.textContent = "No worker is online: nothing reads new batches until one starts.";
    return;
  }
  const served = Object.entries(workers.models).map(
    ([version, n]) => `${version} (${plural(n, "worker")})`).join(", ");
  if (workers.models[serving]) {
    line.textContent = `Workers online: ${workers.online}, serving ${served}.`;
  } else {
    line.className = "message error";
    line.textContent = `No worker online serves ${serving}: they serve ${served}. A worker ` +
      "that cannot load the promoted model keeps its own; its log says why.";
  }
}

const jobNotice = document.getElementById("no-workers");
if (jobNotice) watchJobWorkers(jobNotice);
const modelsLine = document.getElementById("models-workers");
if (modelsLine) showModelWorkers(modelsLine);
