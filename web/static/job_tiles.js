// The job page's tiles, in words and in order: what a tile says, where it sorts, and the
// server's cursor after it (job.js draws them; kept apart for its length).
"use strict";

// Several hands: their digits left to right, and the least sure hand's confidence.
function several(image) {
  return image.status === "done" && (image.hand_count || 0) > 1;
}

// The model's answer in a few characters: "7", "407", "no hand".
function modelAnswer(image) {
  return several(image) ? image.digits : image.digit === null ? "no hand" : String(image.digit);
}

// What a tile says: the final answer, the model's beside it once a person answered; an
// unreadable file's name (its error is where the picture would be).
function tileLabel(image) {
  if (image.status === "error") return image.path.split("/").pop();
  if (image.status !== "done") return image.status;
  if (image.reviewed) {
    const final = image.final_digits === "" ? "unusable" : image.final_digits;
    return `${final} (model ${modelAnswer(image)})`;
  }
  return image.digit === null && !several(image) ? "no hand" :
    `${modelAnswer(image)} (${percent(image.confidence)})`;
}

// Where a row sorts in the grid: lowest confidence first, then the unscored ones by id.
function sortKey(image) {
  return image.confidence === null ? [1, 0, image.id] : [0, image.confidence, image.id];
}

function before(a, b) {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

// The server's cursor after a tile (its codec, web/routes/images.py): after a live update
// trims the grid, "More" goes on from its new last tile.
function cursorAfter(image) {
  const raw = JSON.stringify(image.confidence === null ? [image.id, null, true] :
                                                           [image.id, image.confidence, false]);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
