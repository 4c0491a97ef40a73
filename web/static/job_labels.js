// The job's answers checked against its folder labels (folders named 0-9): accuracy, the
// confusion matrix (a click shows those photos in the grid), and coverage and accuracy at
// any threshold, the job's marked. Hidden for a job with no labelled photo. The figures
// come with the charts' (job.js: the stream's first events, or read again after reviews)
// and are patched by the same rows, so both always count the same batches.
"use strict";
let evaluation = null;

function share(part, whole) {
  return whole ? (100 * part / whole).toFixed(1) + "%" : "-";
}

function drawMatrix(found) {
  const table = document.getElementById("confusion");
  const head = el("tr", {}, el("th", {text: "folder \\ answer"}));
  for (let d = 0; d < 10; d++) head.append(el("th", {text: String(d)}));
  head.append(el("th", {text: "no hand"}));
  const rows = [head];
  found.matrix.forEach((counts, label) => {
    const row = el("tr", {}, el("th", {text: String(label)}));
    counts.forEach((n, answer) => {
      const cls = "cell" + (n ? (answer === label ? " right" : " wrong") : " zero");
      const cell = el("td", {class: cls, text: n ? String(n) : "",
                             "data-label": String(label), "data-answer": String(answer)});
      if (n) cell.addEventListener("click", () => showCell(label, answer));
      row.append(cell);
    });
    rows.push(row);
  });
  table.replaceChildren(...rows);
}

// A cell's photos in the grid: that folder, that answer.
function showCell(label, answer) {
  const chip = document.getElementById("filter-label");
  chip.dataset.label = String(label);
  chip.hidden = false;
  document.getElementById("filter-label-value").textContent = String(label);
  document.getElementById("filter-digit").value = answer === 10 ? "none" : String(answer);
  document.getElementById("filter-wrong").checked = false;
  loadImages(true);
  document.getElementById("grid").scrollIntoView({block: "start"});
}

function drawThreshold() {
  const slider = document.getElementById("threshold-slider");
  const at = Number(slider.value);
  const start = Math.min(1000, Math.max(0, Math.round(at * 1000)));
  let kept = 0, right = 0;
  for (const [n, r] of evaluation.by_confidence.slice(start)) { kept += n; right += r; }
  document.getElementById("threshold-value").textContent = at.toFixed(3);
  document.getElementById("threshold-figures").textContent =
    `at ${at.toFixed(3)}: ${kept} of ${evaluation.counted} kept (coverage ` +
    `${share(kept, evaluation.counted)}), ${share(right, kept)} of them right; ` +
    `${evaluation.counted - kept} below, for review`;
}

// Figures read by the server (GET /api/jobs/{id}/evaluation), drawn by drawEvaluation.
let sliderSet = false;
window.setEvaluation = found => { evaluation = found; };

// A row read since the figures were (job.js countRow, once a row): from "not read yet" to
// where evaluate() (db/labels.py) counts it, by the same rules.
window.countLabelled = image => {
  const found = evaluation;
  const label = image.path[1] === "/" && /[0-9]/.test(image.path[0]) ? Number(image.path[0]) : null;
  if (!found || label === null) return;  // an unlabelled row was counted as one already
  found.pending -= 1;
  if (image.status === "error") { found.errors += 1; return; }
  if (image.status === "cancelled") { found.cancelled += 1; return; }
  if (image.status !== "done") { found.pending += 1; return; }
  if ((image.hand_count || 0) > 1) { found.several_hands += 1; return; }
  const right = image.digit === label ? 1 : 0;
  found.counted += 1;
  found.right += right;
  found.matrix[label][image.digit === null ? 10 : image.digit] += 1;
  if (!image.below_threshold) { found.kept += 1; found.kept_right += right; }
  const bins = found.by_confidence.length;
  const cell = found.by_confidence[Math.min(bins - 1, Math.max(0,
    Math.floor((image.confidence || 0) * bins)))];
  cell[0] += 1;
  cell[1] += right;
  if (image.reviewed && image.final_digits === "") return;  // unusable
  found.final_counted += 1;
  found.final_right += (image.reviewed ? image.final_digit : image.digit) === label ? 1 : 0;
};

window.drawEvaluation = () => {
  const found = evaluation;
  if (!found) return;
  const has = found.counted + found.several_hands + found.errors + found.pending +
      found.cancelled > 0;
  document.getElementById("labels").hidden = !has;
  document.getElementById("filter-wrong-label").hidden = !has;
  if (!has) return;
  const apart = [];
  if (found.several_hands) apart.push(`${found.several_hands} of several hands`);
  if (found.errors) apart.push(`${found.errors} unreadable`);
  if (found.pending) apart.push(`${found.pending} not read yet`);
  if (found.cancelled) apart.push(`${found.cancelled} cancelled`);
  document.getElementById("labels-summary").textContent =
    `Accuracy ${share(found.right, found.counted)}: ${found.right} of ` +
    `${plural(found.counted, "labelled photo")} right` +
    (found.final_right !== found.right || found.final_counted !== found.counted ?
      `; with the reviews applied, ${share(found.final_right, found.final_counted)} of ` +
      `${found.final_counted}` : "") +
    ". A photo with no hand found counts as wrong" +
    (apart.length ? `; not counted: ${apart.join(", ")}` : "") +
    (found.unlabelled ? `; ${plural(found.unlabelled, "photo")} outside folders 0-9` : "") + ".";
  // Read by several models (one promoted while it ran): the thresholds each applied.
  const applied = thresholdsApplied();
  document.getElementById("threshold-job").textContent = (severalModels() ?
    `The ${applied.length === 1 ? "threshold" : "thresholds"} applied (` +
    applied.map(t => `${t.at} by model ${t.by.join(", ")}`).join("; ") + "): " :
    `The job's threshold, ${found.threshold}: `) + `${found.kept} kept (coverage ` +
    `${share(found.kept, found.counted)}), ${share(found.kept_right, found.kept)} of them right.`;
  drawMatrix(found);
  const slider = document.getElementById("threshold-slider");
  if (!sliderSet) slider.value = String(found.threshold);
  sliderSet = true;
  drawThreshold();
};

document.getElementById("threshold-slider").addEventListener("input", () => {
  if (evaluation) drawThreshold();
});
document.getElementById("filter-label-clear").addEventListener("click", () => {
  const chip = document.getElementById("filter-label");
  delete chip.dataset.label;
  chip.hidden = true;
  document.getElementById("filter-digit").value = "";
  loadImages(true);
});
