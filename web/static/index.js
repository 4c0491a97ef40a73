// The jobs list with live progress (one event stream for all its jobs), renaming and
// deleting a job, and the submit form.
"use strict";
const FINISHED = new Set(["done", "done with errors", "failed", "cancelled"]);
const RETRY_MS = 5000;
const tbody = document.querySelector("#jobs tbody");
const jobsMessage = document.getElementById("jobs-message");
let source = null;
let nextCursor = null;
let started = null; // the job the form started last: its message follows its count

function say(node, text, isError = false) {
  node.replaceChildren(text);
  node.className = "message" + (isError ? " error" : "");
}

function jobRow(job) {
  let row = document.getElementById("job-" + job.id);
  if (!row) {
    row = el("tr", {id: "job-" + job.id});
    for (let i = 0; i < 8; i++) row.append(el("td"));
    row.cells[0].append(el("a", {href: "/jobs/" + job.id, class: "job-name"}),
                        el("span", {class: "job-id", text: job.id.slice(0, 8)}));
    row.cells[2].append(el("div", {class: "bar"}, el("div", {class: "fill read"}),
                           el("div", {class: "fill cancelled"})));
    row.cells[2].append(el("span", {class: "muted"}));
    row.cells[7].className = "actions";
    row.cells[7].append(el("button", {class: "rename", type: "button", text: "Rename"}),
                        el("button", {class: "delete", type: "button", text: "Delete"}));
    row.querySelector(".rename").addEventListener("click", () => rename(row));
    row.querySelector(".delete").addEventListener("click", () => remove(row));
  }
  // Images read in green, cancelled ones striped apart: never a full green bar for a job
  // that was stopped.
  const cancelled = job.cancelled || 0;
  const read = job.total_images - job.pending - cancelled;
  const share = n => job.total_images ? (100 * n / job.total_images) + "%" : "0";
  row.dataset.state = job.state;
  row.dataset.name = job.name;
  row.querySelector(".job-name").textContent = job.name || job.id.slice(0, 8);
  row.cells[1].textContent = job.state + (job.stalled ? " (stalled)" : "");
  row.cells[1].className = "state";
  row.querySelector(".fill.read").style.width = share(read);
  row.querySelector(".fill.cancelled").style.width = share(cancelled);
  row.querySelector(".muted").textContent = read + " / " + job.total_images +
      (cancelled ? `, ${cancelled} cancelled` : "");
  // Events carry no review count (null): the last one known stays.
  if (job.reviewed !== null && job.reviewed !== undefined) row.dataset.reviewed = job.reviewed;
  row.cells[3].className = "reviews";
  row.cells[3].textContent = (row.dataset.reviewed || "0") + " / " + job.below_threshold;
  row.cells[4].textContent = job.errors;
  row.cells[5].textContent = job.images_per_second ?? "-";
  row.cells[6].textContent = new Date(job.created_at).toLocaleString();
  // Workers may still hold the batches of a job that has not ended: cancel it first.
  row.querySelector(".delete").disabled = !FINISHED.has(job.state);
  if (started === job.id) showStarted(job);
  return row;
}

// "Started cyril: 1,000 images" with a link to the job, counted as the walk goes on.
function showStarted(job) {
  const message = document.getElementById("submit-message");
  const counting = job.state === "submitting" ? " so far (still counting)" : "";
  message.className = "message";
  message.replaceChildren("Started ", el("a", {href: "/jobs/" + job.id, text: job.name}),
    `: ${job.total_images.toLocaleString("en")} images${counting}. `,
    el("a", {href: "/jobs/" + job.id, class: "open-job", text: "Open the job"}), startedNote,
    ...(startedLeftOut ? [startedLeftOut] : []));
}

// What the server did without (its answer's left_out: a PDF picked by name, a photo over
// the per-file cap, a zip's stray files), one line each: the job counts only the rest.
const LEFT_OUT_SHOWN = 10;
function leftOutList(job) {
  if (!job.left_out_count) return null;
  const items = job.left_out.slice(0, LEFT_OUT_SHOWN).map(line => el("li", {text: line}));
  const more = job.left_out_count - items.length;
  if (more > 0) {
    items.push(el("li", {text: `and ${more.toLocaleString("en")} more (those recorded as ` +
                              "error rows are in the job's errors)"}));
  }
  return el("ul", {class: "left-out"}, ...items);
}

async function rename(row) {
  const cell = row.cells[0];
  if (cell.querySelector("input")) return;
  const input = el("input", {type: "text", class: "new-name", maxlength: "200", size: "24"});
  input.value = row.dataset.name;
  const save = el("button", {type: "button", class: "save-name", text: "Save"});
  const editor = el("span", {class: "name-editor"}, input, save);
  cell.append(editor);
  input.focus();
  input.select();
  const done = async () => {
    try {
      const job = await api("/api/jobs/" + row.id.slice(4), {
        method: "PATCH", body: JSON.stringify({name: input.value}),
        headers: {"Content-Type": "application/json"}});
      editor.remove();
      jobRow(job);
      say(jobsMessage, "");
    } catch (error) {
      say(jobsMessage, error.message, true);
    }
  };
  save.addEventListener("click", done);
  input.addEventListener("keydown", e => {
    if (e.key === "Enter") { e.preventDefault(); done(); }
    if (e.key === "Escape") editor.remove();
  });
}

async function remove(row) {
  const name = row.dataset.name;
  const images = row.querySelector(".muted").textContent.split(" / ")[1].split(",")[0];
  if (!confirm(`Delete the job "${name}": its ${images} images' results, their reviews ` +
               "and any uploaded files? This cannot be undone.")) return;
  try {
    await api("/api/jobs/" + row.id.slice(4), {method: "DELETE"});
    row.remove();
    say(jobsMessage, `deleted "${name}"`);
  } catch (error) {
    say(jobsMessage, error.message, true);
  }
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

// The form's three sources are one at a time: choosing one empties the others, so Start
// sends what the form shows (an earlier choice had silently won over a later one).
const filesInput = document.getElementById("files");
const folderInput = document.getElementById("folder");
const serverInput = document.getElementById("server-folder");
const SOURCES = [[filesInput, "the files chosen"], [folderInput, "the folder chosen"],
                 [serverInput, "the server folder"]];

function chose(input) {
  const cleared = [];
  for (const [other, what] of SOURCES) {
    if (other !== input && other.value) { other.value = ""; cleared.push(what); }
  }
  const message = document.getElementById("submit-message");
  if (cleared.length) say(message, `one source at a time: ${cleared.join(" and ")} before ` +
                          "cleared");
  else if (message.classList.contains("error")) say(message, "");  // an earlier error's
}
filesInput.addEventListener("change", () => { if (filesInput.files.length) chose(filesInput); });
folderInput.addEventListener("change", () => {
  if (folderInput.files.length) chose(folderInput);
});
serverInput.addEventListener("input", () => { if (serverInput.value.trim()) chose(serverInput); });

// What a folder's walk reads (files.paths.is_image_name), from the server's own list.
const IMAGE_EXTENSIONS = new Set(
    document.getElementById("submit-form").dataset.imageExtensions.split(" "));

function isImageName(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 && IMAGE_EXTENSIONS.has(name.slice(dot).toLowerCase());
}

// A folder chosen in the browser, sent as `signdigits run` would read it: its paths inside
// it (3/IMG_1.JPG, without the chosen folder's own name), hidden files and folders and
// names that are not images left out (a readme, .DS_Store, a zip: the walk reads none).
function folderUpload(chosen) {
  const sent = [], leftOut = [];
  for (const f of chosen) {
    const inside = f.webkitRelativePath.split("/").slice(1);
    if (inside.some(part => part.startsWith(".")) || !isImageName(inside[inside.length - 1])) {
      leftOut.push(inside.join("/"));
    } else {
      sent.push([f, inside.join("/")]);
    }
  }
  return {sent, leftOut};
}

function leftOutNote(leftOut) {
  if (!leftOut.length) return "";
  const named = leftOut.slice(0, 3).join(", ") + (leftOut.length > 3 ? ", ..." : "");
  return ` Left out ${leftOut.length} ${leftOut.length === 1 ? "file" : "files"} that ` +
         `${leftOut.length === 1 ? "is" : "are"} not images or hidden: ${named}.`;
}

let startedNote = "";  // what the page left out of a folder, said with the job's count
let startedLeftOut = null;  // what the server left out of the upload (leftOutList)

document.getElementById("submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById("submit-message");
  const threshold = document.getElementById("threshold").value;
  const server = serverInput.value.trim();
  const picked = [...filesInput.files];
  const folderFiles = [...folderInput.files];
  let name = document.getElementById("job-name").value.trim();
  let options, note = "";
  if (folderFiles.length || picked.length) {
    let sent;
    if (folderFiles.length) {
      const chosenFolder = folderFiles[0].webkitRelativePath.split("/")[0];
      const folder = folderUpload(folderFiles);
      if (!folder.sent.length) {
        say(message, `the folder '${chosenFolder}' holds no images (${folder.leftOut.length} ` +
                     "other files); nothing was sent", true);
        return;
      }
      sent = folder.sent;
      note = leftOutNote(folder.leftOut);
      name = name || chosenFolder;  // named after itself: the server sees only its files
    } else {
      // All of them: the server skips what is not an image and says so under the job
      // (a stray PDF among 500 photos had refused the 500), or refuses in one line an
      // upload with nothing else.
      sent = picked.map(f => [f, f.name]);
    }
    const body = new FormData();
    for (const [f, path] of sent) body.append("files", f, path);
    if (threshold) body.append("threshold", threshold);
    if (name) body.append("name", name);
    options = {method: "POST", body};
  } else if (server) {
    const body = {folder: server};
    if (threshold) body.threshold = Number(threshold);
    if (name) body.name = name;
    options = {method: "POST", body: JSON.stringify(body),
               headers: {"Content-Type": "application/json"}};
  } else {
    say(message, "choose files or a folder, or name a folder on the server", true);
    return;
  }
  say(message, "uploading and submitting...");
  try {
    const job = await api("/api/jobs", options);
    form.reset();  // the next job starts from an empty form
    started = job.id;
    startedNote = note;
    startedLeftOut = leftOutList(job);
    // The stream may have shown it already, with newer counts than this answer's.
    const known = document.getElementById("job-" + job.id);
    if (!known) tbody.prepend(jobRow(job));
    else showStarted(job);
    // A folder's walk goes on after the answer: follow the job to its final count.
    if (!known && !FINISHED.has(job.state)) listen();
  } catch (error) {
    say(message, error.message, true);
  }
});

loadJobs(false).catch(error => say(jobsMessage, error.message, true));
