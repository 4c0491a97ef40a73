// The job page's image dialog: the photo with the hands drawn, what the model read, the
// review if any, and a correction by key or button (POST /api/images/{id}/review).
"use strict";
let shownImage = null;

function reviewText(image) {
  if (!image.reviewed) return "";
  const said = image.final_digits === "" ? "unusable: no digit shown" :
    several(image) ? `digits ${image.final_digits}` : `digit ${image.final_digits}`;
  return `Reviewed: ${said}. The model's answer below.`;
}

function openImage(image) {
  shownImage = image;
  document.getElementById("detail-path").textContent = image.path;
  // An unreadable file has no photo to show (its picture is a 422): the error says why.
  const unreadable = image.status === "error";
  const photo = document.getElementById("detail-photo");
  document.getElementById("detail-picture").hidden = unreadable;
  if (unreadable) photo.removeAttribute("src");
  else photo.src = `/api/images/${image.id}/annotated.jpg`;
  showCrop(document.getElementById("detail-crop"), document.getElementById("detail-preview"),
           image);
  document.getElementById("detail-reading").textContent = readingText(image);
  const review = document.getElementById("detail-review");
  review.textContent = reviewText(image);
  review.hidden = !image.reviewed;
  const summary = document.getElementById("detail-summary");
  const model = image.reviewed ? "the model said " : "";
  summary.textContent = unreadable ? `This file could not be read: ${image.error || "error"}` :
    image.status !== "done" ? image.status :
    several(image) ? `${model}digits ${image.digits}: ${image.hand_count} hands, read left ` +
      `to right; the least sure ${percent(image.confidence)}` +
      (image.below_threshold ? " (below the threshold)" : "") :
    image.digit === null ? (image.reviewed ? "the model found no hand" : "No hand found in this photo") :
    `${model}digit ${image.digit}, confidence ${percent(image.confidence)}` +
    (image.below_threshold ? " (below the threshold)" : "");
  const noHand = image.status === "done" && image.digit === null && !several(image) &&
    !image.reviewed;
  summary.className = "reading" + (image.reviewed ? " model" : "") +
    (unreadable || noHand ? " nohand" : "");
  // Which model read it, and the threshold that flagged it (a promote mid-job: another).
  const read = document.getElementById("detail-model");
  read.hidden = !image.model_version;
  const by = models.find(m => m.version === image.model_version);
  const threshold = by && by.threshold !== null ? by.threshold : section.dataset.threshold;
  read.textContent = `read by model ${image.model_version}, flagged below ${threshold}`;
  const probabilities = image.probabilities || [];
  document.getElementById("detail-probabilities").hidden = !probabilities.length;
  barChart(document.getElementById("detail-probabilities"), probabilities.map((p, d) => ({
    label: String(d), value: p, shown: percent(p), cls: d === image.digit ? "top" : ""})));
  document.getElementById("detail-keys").hidden = image.status !== "done";
  document.getElementById("detail-message").textContent = "";
  const dialog = document.getElementById("detail");
  if (!dialog.open) dialog.showModal();
}

async function correct(answer) {
  const image = shownImage;
  const message = document.getElementById("detail-message");
  if (!image || image.status !== "done") return;
  try {
    await api(`/api/images/${image.id}/review`, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(answer)});
  } catch (error) {
    message.textContent = error.message;
    message.className = "message error";
    return;
  }
  const updated = Object.assign({}, image, {reviewed: true,
    reviewed_digit: answer.unusable ? null : answer.digit,
    final_digit: answer.unusable ? null : answer.digit,
    final_digits: answer.unusable ? "" : String(answer.digit)});
  const shown = tileOf(image.id);
  if (shown) shown.replaceWith(tile(updated));
  openImage(updated);
  message.className = "message";
  message.textContent = "saved";
  reviewsChanged();
}

for (const button of document.querySelectorAll(".detail-digit")) {
  button.addEventListener("click", () => correct({digit: Number(button.dataset.digit)}));
}
document.getElementById("detail-unusable").addEventListener("click",
                                                              () => correct({unusable: true}));
document.getElementById("detail").addEventListener("keydown", event => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (/^[0-9]$/.test(event.key)) { event.preventDefault(); correct({digit: Number(event.key)}); }
  else if (event.key === "x") { event.preventDefault(); correct({unusable: true}); }
});
