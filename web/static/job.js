// One job: live progress, charts and thumbnail grid (server-sent events). The image dialog
// and its review are in job_dialog.js, the selection and bulk review in job_select.js, the
// check against folder labels in job_labels.js, what a tile says in job_tiles.js.
"use strict";
const section = document.getElementById("job");
const JOB = section.dataset.job;
const grid = document.getElementById("grid");
const PAGE = 60;
let cursor = null;
let loading = false;
let allowed = PAGE;  // tiles the grid holds: a page per "More"
let stats = null;  // the charts' figures: the stream's first event, then patched
let counted = new Set();  // ids the patches added to `stats` since it was read
let jobState = section.querySelector("#state").textContent;
// What the live updates cost, for the tests and the figures in docs/web-and-api.md.
const live = window.liveUpdates = {renders: [], updates: [], rows: 0, batches: 0};

const ENDED = new Set(["done", "done with errors", "failed", "cancelled"]);
// Ended when the page was drawn: its rows and figures are final, nothing to read again.
const endedAtLoad = ENDED.has(jobState);

// The models that read the job (its answer's `models`): more than one when a model was
// promoted while it ran, each with the threshold that flagged its images.
let models = JSON.parse(section.dataset.models) || [];
const SUBMITTED_WITH = section.dataset.model;
const FROM_MODEL = section.dataset.fromModel === "true";

function severalModels() {
  return models.length > 1 || (models.length === 1 && models[0].version !== SUBMITTED_WITH);
}

// The thresholds its images were flagged against, lowest first, each with the models that
// applied it: the job's own unless other models read it.
function thresholdsApplied() {
  if (!severalModels()) return [{at: Number(section.dataset.threshold), by: [SUBMITTED_WITH]}];
  const by = new Map();
  for (const m of models) {
    if (m.threshold === null) continue;
    if (!by.has(m.threshold)) by.set(m.threshold, []);
    by.get(m.threshold).push(m.version);
  }
  return [...by].sort((a, b) => a[0] - b[0]).map(([at, versions]) => ({at, by: versions}));
}

// "threshold 0.6, model v1" as drawn, or every model with its images (and threshold).
function showModels() {
  const list = document.getElementById("job-models");
  const several = severalModels();
  list.hidden = !several;
  document.getElementById("threshold-marks").replaceChildren(
    ...thresholdsApplied().map(t => el("option", {value: String(t.at)})));
  if (!several) return;
  document.getElementById("job-model-text").textContent =
    (FROM_MODEL ? "" : `threshold ${section.dataset.threshold} (given: every model ` +
                       "flagged by it), ") +
    `submitted with model ${SUBMITTED_WITH}; read by ${plural(models.length, "model")} ` +
    "(a model was promoted after it was submitted)" +
    (FROM_MODEL ? ", each flagging by its own default threshold:" : ":");
  list.replaceChildren(...models.map(m => el("li", {"data-version": m.version},
    el("code", {text: m.version}), `: ${plural(m.images, "image")}` + (FROM_MODEL ?
      `, threshold ${m.threshold === null ? "unknown (its files are gone)" : m.threshold}` :
      ""))));
}

// The models again: the job's own answer (it counts the job's rows, so not every event).
async function loadModels() {
  models = (await api(`/api/jobs/${JOB}`)).models || [];
  showModels();
  if (stats) drawStats();
}

// The bar: images read in green, cancelled ones striped apart ("3 / 5 images read, 2
// cancelled", never a full green 5 / 5).
function showProgress(job) {
  const cancelled = job.cancelled || 0;
  const read = job.total_images - job.pending - cancelled;
  const share = n => job.total_images ? (100 * n / job.total_images) + "%" : "0";
  jobState = job.state;
  document.getElementById("state").textContent = job.state + (job.stalled ? " (stalled)" : "");
  document.getElementById("counts").textContent =
    (cancelled ? `${read} / ${job.total_images} images read, ${cancelled} cancelled: ` :
                 `${read} / ${job.total_images} images: `) +
    `${job.done} classified, ${job.below_threshold} below threshold, ` +
    plural(job.errors, "error") +
    (job.images_per_second ? `, ${job.images_per_second} images/s` : "");
  document.getElementById("progress").style.width = share(read);
  document.getElementById("progress-cancelled").style.width = share(cancelled);
  // The review page lists the images below the threshold: linked only when there are some.
  const review = document.getElementById("review-link");
  review.hidden = !job.below_threshold;
  review.textContent = `review the ${plural(job.below_threshold, "uncertain image")}`;
  document.getElementById("review-none").hidden = Boolean(job.below_threshold);
  // Nothing is left to cancel once the job has ended.
  document.getElementById("cancel").disabled = ENDED.has(job.state);
}

function drawStats() {
  const perDigit = stats.digits.map((n, d) => ({label: String(d), value: n}));
  if (stats.no_hand) perDigit.push({label: "no hand", value: stats.no_hand, cls: "low"});
  if (stats.unusable) perDigit.push({label: "unusable", value: stats.unusable, cls: "low"});
  barChart(document.getElementById("digits"), perDigit);
  const bins = stats.confidence_histogram.length;
  // Several thresholds: a line each; a bin below the lowest is flagged by every model,
  // one below a higher only by some (striped). A bin a threshold falls inside holds
  // flagged and kept photos alike: striped too (0.875 cuts the 0.85-0.90 bin).
  const applied = severalModels() ? thresholdsApplied() : [];
  const low = applied.length ? applied[0].at : stats.threshold;
  const high = applied.length ? applied[applied.length - 1].at : stats.threshold;
  const marks = applied.length ? applied.map(t => ({
    at: t.at, title: `threshold ${t.at} (model ${t.by.join(", ")})`})) : stats.threshold;
  document.getElementById("histogram-marks").textContent = applied.length > 1 ?
    `(thresholds ${applied.map(t => t.at).join(", ")} marked)` : "(threshold marked)";
  barChart(document.getElementById("histogram"), stats.confidence_histogram.map((n, i) => {
    const cls = (i + 1) / bins <= low ? "low" : i / bins < high ? "some" : "";
    return {label: i % 5 === 0 ? (i / bins).toFixed(2) : "", value: n, cls,
            title: cls === "some" ? `${n}: some flagged, some not` : undefined};
  }), marks);
}

// A row the stream said was stored: its place in the charts and the labels' figures
// (never twice).
function countRow(image) {
  if (image.status === "pending" || counted.has(image.id)) return;
  counted.add(image.id);
  if (window.countLabelled) window.countLabelled(image);
  if (image.status !== "done") return;
  if (image.final_digit !== null) stats.digits[image.final_digit] += 1;
  else if (image.reviewed && image.final_digits === "") stats.unusable += 1;
  else if (!image.reviewed && image.digit === null && !(image.hand_count > 1)) stats.no_hand += 1;
  if (image.confidence !== null) {
    const bins = stats.confidence_histogram.length;
    stats.confidence_histogram[Math.min(bins - 1, Math.floor(image.confidence * bins))] += 1;
  }
}

function filters() {
  const params = new URLSearchParams({order: "confidence", limit: String(PAGE)});
  for (const [k, v] of Object.entries(filterObject())) params.set(k, String(v));
  return params;
}

// The grid's filters as the API names them (the query and the bulk review's filter).
function filterObject() {
  const where = {};
  const digit = document.getElementById("filter-digit").value;
  if (digit === "none") where.no_hand = true; else if (digit !== "") where.digit = Number(digit);
  const reviewed = document.getElementById("filter-reviewed").value;
  if (reviewed !== "") where.reviewed = reviewed === "true";
  if (document.getElementById("filter-below").checked) where.below_threshold = true;
  if (document.getElementById("filter-errors").checked) where.status = "error";
  if (document.getElementById("filter-wrong").checked) where.wrong = true;
  const label = document.getElementById("filter-label").dataset.label;
  if (label) where.label = Number(label);
  return where;
}

// Whether a row the stream brought belongs in the grid as filtered (filterObject's rules).
function matches(image) {
  const where = filterObject();
  const label = image.path[1] === "/" && /[0-9]/.test(image.path[0]) ? Number(image.path[0]) : null;
  const noHand = image.status === "done" && image.digit === null && !(image.hand_count > 1);
  return (where.digit === undefined || image.digit === where.digit) &&
    (!where.no_hand || noHand) &&
    (where.reviewed === undefined || image.reviewed === where.reviewed) &&
    (!where.below_threshold || image.below_threshold === true) &&
    (where.status === undefined || image.status === where.status) &&
    (where.label === undefined || label === where.label) &&
    (!where.wrong || (label !== null && image.status === "done" && !(image.hand_count > 1) &&
                      image.digit !== label));
}

function tile(image) {
  const cls = "tile" + (image.below_threshold ? " low" : "") +
              (image.status === "error" ? " error" : "") + (image.reviewed ? " reviewed" : "");
  const pick = el("input", {type: "checkbox", class: "pick", title: "select (shift: a range)"});
  // An unreadable file has no picture to ask for (its thumbnail is a 422): its error.
  const picture = image.status === "error" ?
    el("div", {class: "unreadable", text: image.error || "unreadable"}) :
    el("img", {src: `/api/images/${image.id}/thumbnail`, loading: "lazy", alt: image.path});
  const node = el("div", {class: cls, "data-image": String(image.id), title: image.path},
    pick, picture, el("div", {class: "label", text: tileLabel(image)}));
  node.image = image;
  node.sortKey = sortKey(image);
  node.addEventListener("click", event => {
    if (event.target === pick) return;  // job_select.js handles the box
    openImage(node.image);
  });
  if (window.onTile) window.onTile(node);
  return node;
}

function tileOf(id) {
  return grid.querySelector(`.tile[data-image="${id}"]`);
}

async function loadImages(reset) {
  if (loading) return;
  loading = true;
  try {
    if (reset) { grid.replaceChildren(); cursor = null; allowed = PAGE; }
    else allowed = grid.children.length + PAGE;
    const params = filters();
    if (cursor) params.set("cursor", cursor);
    const page = await api(`/api/jobs/${JOB}/images?${params}`);
    for (const image of page.items) {
      const shown = tileOf(image.id);  // already placed by a live update
      if (shown) shown.replaceWith(tile(image)); else grid.append(tile(image));
    }
    cursor = page.next_cursor;
    document.getElementById("more-images").hidden = !cursor;
    grid.dataset.loaded = String(grid.children.length);
    if (reset && window.onGridReset) window.onGridReset();
  } finally {
    loading = false;
  }
}

// Rows stored since the last event: each tile replaced or put in its place (lowest
// confidence first), the grid kept to the tiles it had, and each row counted in the charts.
function patch(rows) {
  for (const image of rows) {
    countRow(image);
    const shown = tileOf(image.id);
    if (shown) shown.remove();
    if (!matches(image)) continue;
    const key = sortKey(image);
    const next = [...grid.children].find(t => before(key, t.sortKey));
    if (next) grid.insertBefore(tile(image), next);
    else if (!cursor) grid.append(tile(image));  // the last page is shown: it ends there
  }
  if (grid.children.length > allowed) {  // trimmed: "More" goes on after the new last tile
    while (grid.children.length > allowed) grid.lastElementChild.remove();
    cursor = cursorAfter(grid.lastElementChild.image);
    document.getElementById("more-images").hidden = false;
  }
  grid.dataset.loaded = String(grid.children.length);
}

// Every panel with figures, in one step (the browser paints them together): the header
// from the job's counts (none: as it is), the charts and the labels' figures from the
// figures read with them (none: as they are) and the rows of the same batches.
function drawFigures(job, fresh, found, rows) {
  if (fresh) { stats = fresh; counted = new Set(); }
  if (found && window.setEvaluation) window.setEvaluation(found);
  patch(rows);
  if (job) showProgress(job);
  if (stats) drawStats();
  if (window.drawEvaluation) window.drawEvaluation();
}

// The stream names batches; their finished rows, a page at a time.
async function fetchBatches(batches) {
  const rows = [];
  for (let i = 0; i < batches.length; i += 100) {
    let next = null;
    do {
      const params = new URLSearchParams({order: "id", limit: "500"});
      for (const b of batches.slice(i, i + 100)) params.append("batch", String(b));
      if (next) params.set("cursor", next);
      const page = await api(`/api/jobs/${JOB}/images?${params}`);
      rows.push(...page.items);
      next = page.next_cursor;
    } while (next);
  }
  return rows;
}

let patching = Promise.resolve();
let modelsRead = performance.now();
// What the stream told since the last drawing: the figures (on (re)connecting) and the
// batches stored. Drawn when the progress or done event after them arrives, once those
// batches' rows are fetched: the header, the charts and the labels' figures then show the
// same batches (the header had run ahead of the charts by a fetch, and the labels'
// figures, read again at most every 10 s, behind both).
let told = {stats: null, evaluation: null, batches: []};
function update(job) {
  const {stats: fresh, evaluation: found, batches} = told;
  told = {stats: null, evaluation: null, batches: []};
  // In order: a later event's rows never land before an earlier one's.
  const at = performance.now();
  patching = patching.then(async () => {
    const rows = batches.length ? await fetchBatches(batches) : [];
    const start = performance.now();
    drawFigures(job, fresh, found, rows);
    if (!batches.length) return;
    live.renders.push(performance.now() - start);  // the drawing
    live.updates.push(performance.now() - at);  // from the event: the rows' fetch too
    live.rows += rows.length;
    live.batches += batches.length;
    section.dataset.liveRows = String(live.rows);
    // A model promoted meanwhile reads the next batches: at most every 10 s.
    if (performance.now() - modelsRead > 10000) {
      modelsRead = performance.now();
      await loadModels();
    }
  }).catch(error => { document.getElementById("counts").textContent += ` (${error.message})`; });
  return patching;
}

// The charts and the labels' figures after a person's answers: read afresh, and drawn
// together. While the job runs, the stream is opened again: its first events hold the
// figures and the batches they count together.
function reviewsChanged() {
  if (ENDED.has(jobState)) loadFigures(); else reopen();
}

// An ended job's figures, exact now that only people's answers change them.
async function loadFigures(job = null) {
  try {
    const [fresh, found] = await Promise.all(
      [api(`/api/jobs/${JOB}/stats`), api(`/api/jobs/${JOB}/evaluation`)]);
    drawFigures(job, fresh, found, []);
  } catch (error) {
    document.getElementById("counts").textContent += ` (${error.message})`;
  }
}

for (const id of ["filter-digit", "filter-reviewed", "filter-below", "filter-errors",
                  "filter-wrong"]) {
  document.getElementById(id).addEventListener("change", () => loadImages(true));
}
document.getElementById("more-images").addEventListener("click", () => loadImages(false));
// Cancelling cannot be undone: asked first, as promoting, rolling back and deleting are.
document.getElementById("cancel").addEventListener("click", async () => {
  const name = document.getElementById("job-name").textContent;
  if (!window.confirm(`Cancel the job "${name}" (${JOB.slice(0, 8)})? Its pending images ` +
                      "will not be read; the results so far stay. This cannot be undone.")) return;
  // The stream shows the cancelled images, in every panel at once, within a second.
  await api(`/api/jobs/${JOB}/cancel`, {method: "POST"});
  document.getElementById("cancel").disabled = true;
});

// The server ends the stream when its database fails (an "error" event, then a retry the
// browser makes itself); a refused reconnection (a 503 while the database is still down)
// closes the source for good, so the page opens a new one. Each (re)connection's first
// events ("stats", "evaluation") bring the figures afresh; "stored" names batches to
// fetch; each is drawn with the "progress" or "done" event after it (update).
let events = null;
function listen() {
  const source = events = new EventSource(`/api/jobs/${JOB}/events?stored=true`);
  source.addEventListener("stats", e => { told.stats = JSON.parse(e.data); });
  source.addEventListener("evaluation", e => { told.evaluation = JSON.parse(e.data); });
  source.addEventListener("stored", e => { told.batches = JSON.parse(e.data).batches; });
  source.addEventListener("progress", e => update(JSON.parse(e.data)));
  source.addEventListener("done", async e => {
    const job = JSON.parse(e.data);
    update(job);
    source.close();
    if (job.models) {  // the models that read it, now final (the event names them)
      models = job.models;
      showModels();
      if (stats) drawStats();
    }
    // A job that ended with no progress event in between (its last batch stored between
    // two of the stream's looks) had left its tiles "pending" and its charts at zero.
    if (endedAtLoad) return;
    await patching;
    await loadFigures(job);  // exact, now that nothing changes
    await loadImages(true);
  });
  source.addEventListener("error", () => {
    if (source === events && source.readyState === EventSource.CLOSED) setTimeout(listen, 5000);
  });
}

function reopen() {
  if (events) events.close();
  listen();
}

showModels();
listen();
loadImages(true);
