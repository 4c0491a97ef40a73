// The job's answers checked against its folder labels (folders named 0-9): accuracy, the
// confusion matrix (a click shows those photos in the grid), and coverage and accuracy at
// any threshold, the job's marked. Hidden for a job with no labelled photo.
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

async function readEvaluation() {
  const found = await api(`/api/jobs/${JOB}/evaluation`);
  const has = found.counted + found.several_hands + found.errors + found.pending +
      found.cancelled > 0;
  document.getElementById("labels").hidden = !has;
  document.getElementById("filter-wrong-label").hidden = !has;
  if (!has) return;
  const first = evaluation === null;
  evaluation = found;
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
  if (first) slider.value = String(found.threshold);
  drawThreshold();
}
window.loadEvaluation = () => readEvaluation().catch(error => {
  document.getElementById("labels-summary").textContent = error.message;
});

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
window.loadEvaluation();
