// The jobs list with live progress (one event stream for all its jobs) and the submit form.
"use strict";
const FINISHED = new Set(["done", "done with errors", "failed", "cancelled"]);
const RETRY_MS = 5000;
const tbody = document.querySelector("#jobs tbody");
let source = null;
let nextCursor = null;

function jobRow(job) {
  let row = document.getElementById("job-" + job.id);
  if (!row) {
    row = el("tr", {id: "job-" + job.id});
    for (let i = 0; i < 7; i++) row.append(el("td"));
    row.cells[0].append(el("a", {href: "/jobs/" + job.id, text: job.id.slice(0, 8)}));
    row.cells[2].append(el("div", {class: "bar"}, el("div", {class: "fill"})));
    row.cells[2].append(el("span", {class: "muted"}));
  }
  const finished = job.total_images - job.pending;
  row.dataset.state = job.state;
  row.cells[1].textContent = job.state + (job.stalled ? " (stalled)" : "");
  row.cells[1].className = "state";
  row.querySelector(".fill").style.width = job.total_images ?
      (100 * finished / job.total_images) + "%" : "0";
  row.querySelector(".muted").textContent = finished + " / " + job.total_images;
  row.cells[3].textContent = job.below_threshold;
  row.cells[4].textContent = job.errors;
  row.cells[5].textContent = job.images_per_second ?? "-";
  row.cells[6].textContent = new Date(job.created_at).toLocaleString();
  return row;
}

// One event stream for every job on the page (one per job had taken all of Chromium's 6
// connections to the server with 6 unfinished jobs, and the page's other requests hung):
// the unfinished jobs shown, and any job created after the newest shown.
function listen() {
  if (source) source.close();
  const params = new URLSearchParams();
  const rows = [...tbody.rows];
  for (const row of rows.filter(r => !FINISHED.has(r.dataset.state)).slice(0, 200)) {
    params.append("job", row.id.slice(4));
  }
  if (rows.length) params.set("after", rows[0].id.slice(4));
  const opened = new EventSource("/api/events?" + params);
  source = opened;
  opened.addEventListener("job", e => {
    const job = JSON.parse(e.data);
    const known = document.getElementById("job-" + job.id);
    const row = jobRow(job);
    if (!known) tbody.prepend(row);
  });
  // The server ends the stream when its database fails (an "error" event, then a retry
  // the browser makes itself); a refused reconnection closes the source for good, so the
  // page opens a new one, with the jobs it shows now.
  opened.addEventListener("error", () => {
    if (opened.readyState === EventSource.CLOSED && source === opened) {
      setTimeout(() => { if (source === opened) listen(); }, RETRY_MS);
    }
  });
}

async function loadJobs(more) {
  const url = "/api/jobs?limit=20" + (more && nextCursor ? "&cursor=" + nextCursor : "");
  const page = await api(url);
  for (const job of page.items) tbody.append(jobRow(job));
  nextCursor = page.next_cursor;
  document.getElementById("more-jobs").hidden = !nextCursor;
  listen();  // again, with the unfinished jobs of this page too
}

document.getElementById("more-jobs").addEventListener("click", () => loadJobs(true));

document.getElementById("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("submit-message");
  const threshold = document.getElementById("threshold").value;
  const server = document.getElementById("server-folder").value.trim();
  const files = [...document.getElementById("files").files,
                 ...document.getElementById("folder").files];
  let options;
  if (files.length) {
    const form = new FormData();
    // A folder's files keep their paths inside it (3/IMG_1.JPG), as a zip's do and as
    // `signdigits run FOLDER` records them: without the chosen folder's own name.
    for (const f of files) {
      const inside = f.webkitRelativePath ? f.webkitRelativePath.split("/").slice(1).join("/") : "";
      form.append("files", f, inside || f.name);
    }
    if (threshold) form.append("threshold", threshold);
    options = {method: "POST", body: form};
  } else if (server) {
    const body = {folder: server};
    if (threshold) body.threshold = Number(threshold);
    options = {method: "POST", body: JSON.stringify(body),
               headers: {"Content-Type": "application/json"}};
  } else {
    message.textContent = "choose files or a folder, or name a folder on the server";
    message.className = "message error";
    return;
  }
  message.textContent = "uploading and submitting...";
  message.className = "message";
  try {
    const job = await api("/api/jobs", options);
    message.textContent = "job " + job.id + ": " + job.total_images + " images";
    // The stream may have shown it already, with newer counts than this answer's.
    if (!document.getElementById("job-" + job.id)) tbody.prepend(jobRow(job));
  } catch (error) {
    message.textContent = error.message;
    message.className = "message error";
  }
});

loadJobs(false).catch(error => {
  document.getElementById("submit-message").textContent = error.message;
});
