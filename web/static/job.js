// One job: live progress (server-sent events), charts, and the filterable thumbnail grid.
"use strict";
const section = document.getElementById("job");
const JOB = section.dataset.job;
const THRESHOLD = Number(section.dataset.threshold);
const grid = document.getElementById("grid");
let cursor = null;
let loading = false;

const ENDED = new Set(["done", "done with errors", "failed", "cancelled"]);

function showProgress(job) {
  const finished = job.total_images - job.pending;
  document.getElementById("state").textContent = job.state + (job.stalled ? " (stalled)" : "");
  document.getElementById("counts").textContent =
    `${finished} / ${job.total_images} images: ${job.done} classified, ` +
    `${job.below_threshold} below threshold, ${job.errors} errors` +
    (job.images_per_second ? `, ${job.images_per_second} images/s` : "");
  document.getElementById("progress").style.width =
    job.total_images ? (100 * finished / job.total_images) + "%" : "0";
  // Nothing is left to cancel once the job has ended.
  document.getElementById("cancel").disabled = ENDED.has(job.state);
}

async function loadStats() {
  const stats = await api(`/api/jobs/${JOB}/stats`);
  const perDigit = stats.digits.map((n, d) => ({label: String(d), value: n}));
  if (stats.no_hand) perDigit.push({label: "no hand", value: stats.no_hand, cls: "low"});
  barChart(document.getElementById("digits"), perDigit);
  const bins = stats.confidence_histogram.length;
  barChart(document.getElementById("histogram"), stats.confidence_histogram.map((n, i) => ({
    label: i % 5 === 0 ? (i / bins).toFixed(2) : "", value: n,
    cls: (i + 1) / bins <= stats.threshold ? "low" : ""})), stats.threshold);
}

function filters() {
  const params = new URLSearchParams({order: "confidence", limit: "60"});
  const digit = document.getElementById("filter-digit").value;
  if (digit !== "") params.set("digit", digit);
  if (document.getElementById("filter-below").checked) params.set("below_threshold", "true");
  if (document.getElementById("filter-errors").checked) params.set("status", "error");
  return params;
}

// Several hands: their digits left to right, and the least sure hand's confidence.
function several(image) {
  return image.status === "done" && (image.hand_count || 0) > 1;
}

function tile(image) {
  const label = image.status !== "done" ? (image.error || image.status) :
      several(image) ? `${image.digits} (${percent(image.confidence)})` :
      image.digit === null ? "no hand" : `${image.digit} (${percent(image.confidence)})`;
  const cls = "tile" + (image.below_threshold ? " low" : "") +
              (image.status === "error" ? " error" : "");
  const node = el("div", {class: cls, "data-image": String(image.id), title: image.path},
    el("img", {src: `/api/images/${image.id}/thumbnail`, loading: "lazy", alt: image.path}),
    el("div", {class: "label", text: label}));
  node.addEventListener("click", () => openImage(image));
  return node;
}

async function loadImages(reset) {
  if (loading) return;
  loading = true;
  try {
    if (reset) { grid.replaceChildren(); cursor = null; }
    const params = filters();
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/api/jobs/${JOB}/images?${params}`);
    for (const image of page.items) grid.append(tile(image));
    cursor = page.next_cursor;
    document.getElementById("more-images").hidden = !cursor;
    grid.dataset.loaded = String(grid.children.length);
  } finally {
    loading = false;
  }
}

function openImage(image) {
  document.getElementById("detail-path").textContent = image.path;
  document.getElementById("detail-photo").src = `/api/images/${image.id}/annotated.jpg`;
  showCrop(document.getElementById("detail-crop"), document.getElementById("detail-preview"),
           image);
  document.getElementById("detail-reading").textContent = readingText(image);
  const summary = document.getElementById("detail-summary");
  summary.textContent = image.status !== "done" ? (image.error || image.status) :
    several(image) ? `digits ${image.digits}: ${image.hand_count} hands, read left to right; ` +
      `the least sure ${percent(image.confidence)}` +
      (image.below_threshold ? " (below the threshold)" : "") :
    image.digit === null ? "No hand found in this photo" :
    `digit ${image.digit}, confidence ${percent(image.confidence)}` +
    (image.below_threshold ? " (below the threshold)" : "");
  summary.className = "reading" + (image.status === "done" && image.digit === null &&
                                   !several(image) ? " nohand" : "");
  const probabilities = image.probabilities || [];
  document.getElementById("detail-probabilities").hidden = !probabilities.length;
  barChart(document.getElementById("detail-probabilities"), probabilities.map((p, d) => ({
    label: String(d), value: p, shown: percent(p), cls: d === image.digit ? "top" : ""})));
  document.getElementById("detail").showModal();
}

for (const id of ["filter-digit", "filter-below", "filter-errors"]) {
  document.getElementById(id).addEventListener("change", () => loadImages(true));
}
document.getElementById("more-images").addEventListener("click", () => loadImages(false));
document.getElementById("cancel").addEventListener("click", async () => {
  showProgress(await api(`/api/jobs/${JOB}/cancel`, {method: "POST"}));
});

// The server ends the stream when its database fails (an "error" event, then a retry the
// browser makes itself); a refused reconnection (a 503 while the database is still down)
// closes the source for good, so the page opens a new one.
function listen() {
  const events = new EventSource(`/api/jobs/${JOB}/events`);
  events.addEventListener("progress", e => showProgress(JSON.parse(e.data)));
  events.addEventListener("done", e => {
    showProgress(JSON.parse(e.data));
    events.close();
    loadStats();
    loadImages(true);
  });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) setTimeout(listen, 5000);
  });
}

listen();
loadStats();
loadImages(true);
