// The review queue, one image at a time, driven by the keyboard:
// 0-9 record a digit, Enter the model's digit, x unusable, Backspace back one.
// A photo of several hands is answered hand by hand, left to right: 0-9 or Enter for the
// hand marked, n for "not a hand"; the next photo comes after its last hand.
"use strict";
const section = document.getElementById("review");
const JOB = section.dataset.job;
const queue = [];          // fetched, not yet shown
const history = [];        // shown and answered this session, newest last
const seen = new Set();    // every id fetched, so a refill never repeats one
const answered = new Map(); // id -> what was recorded this session
let current = null;
let hand = 0;               // the hand being answered, on a photo of several
let exhausted = false;
let refilling = null;
let saving = Promise.resolve(); // posts go one after another: the last key is the answer
let saved = 0;

function showCounter(reviewed, total) {
  document.getElementById("counter").textContent = `${reviewed} of ${total} reviewed`;
}

function topThree(probabilities) {
  return (probabilities || []).map((p, d) => [p, d]).sort((a, b) => b[0] - a[0]).slice(0, 3);
}

function photoUrl(item) { return `/api/images/${item.id}/annotated.jpg?side=512`; }

function several(item) { return item !== null && (item.hands || []).length > 1; }

function guessItems(item) {
  if (several(item)) {
    return item.hands.map((h, i) => el("li", {
      class: "hand" + (i === hand ? " selected" : "") + (h.below_threshold ? " low" : ""),
      text: `hand ${i + 1} of ${item.hands.length}: ${h.digit}  (${percent(h.confidence)})` +
            (i === hand ? "  <- 0-9, Enter or n" : "")}));
  }
  return item.digit === null ? [el("li", {class: "nohand", text: "no hand found"})] :
    topThree(item.probabilities).map(([p, d]) => el("li", {text: `${d}  (${percent(p)})`}));
}

function show() {
  const box = document.getElementById("review-item");
  document.getElementById("review-done").hidden = current !== null || !exhausted;
  box.hidden = current === null;
  if (current === null) return;
  document.getElementById("review-photo").src = photoUrl(current);
  showCrop(document.getElementById("review-crop"), document.getElementById("review-preview"),
           current);
  document.getElementById("review-reading").textContent = readingText(current);
  // No hand: no digit to accept.
  document.getElementById("key-accept").disabled = current.digit === null && !several(current);
  document.getElementById("key-not-hand").hidden = !several(current);
  document.getElementById("review-guesses").replaceChildren(...guessItems(current));
  box.dataset.hand = several(current) ? String(hand) : "";
  document.getElementById("review-path").textContent = current.path;
  const answer = answered.get(current.id);
  document.getElementById("review-answer").textContent =
    answer === undefined ? "" : `recorded: ${answer} (a new key replaces it)`;
  box.dataset.image = String(current.id);
  if (queue.length) new Image().src = photoUrl(queue[0]); // the next one loads meanwhile
}

async function refill() {
  if (exhausted || queue.length >= 5) return;
  if (refilling) return refilling;
  const skip = [current, ...queue].filter(Boolean).map(i => i.id).join(",");
  refilling = api(`/api/jobs/${JOB}/review?limit=20&skip=${skip}`).then(page => {
    showCounter(page.reviewed, page.total);
    const fresh = page.items.filter(i => !seen.has(i.id));
    fresh.forEach(i => { seen.add(i.id); queue.push(i); });
    if (page.items.length < 20) exhausted = true;
    if (current === null && queue.length) current = queue.shift();
    show();
  }).catch(e => {
    document.getElementById("review-message").textContent = e.message;
  }).finally(() => { refilling = null; });
  return refilling;
}

function record(answer, label) {
  if (current === null) return;
  const item = current;
  if (several(item) && !answer.unusable) {  // one hand's answer: the label grows hand by hand
    const labels = (answered.get(item.id) || "").split(",").filter(Boolean).slice(0, hand);
    answer = {...answer, hand};
    label = [...labels, label].join(",");
  }
  answered.set(item.id, label);
  saving = saving.then(() => api(`/api/images/${item.id}/review`, {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(answer)})).then(stored => {
    showCounter(stored.queue_reviewed, stored.queue_total);
    document.getElementById("review-message").textContent = "";
  }).catch(e => {
    answered.delete(item.id);
    document.getElementById("review-message").textContent = `image ${item.id}: ${e.message}`;
  }).finally(() => { section.dataset.saved = String(++saved); });
  if (several(item) && answer.hand !== undefined && hand < item.hands.length - 1) {
    hand += 1;  // the same photo, its next hand
    show();
    return;
  }
  history.push(item);
  current = queue.length ? queue.shift() : null;
  hand = 0;
  show();
  refill();
}

function back() {
  if (several(current) && hand > 0) { hand -= 1; show(); return; }
  if (!history.length) return;
  if (current !== null) queue.unshift(current);
  current = history.pop();
  hand = 0;
  show();
}

function press(key) {
  if (/^[0-9]$/.test(key)) record({digit: Number(key)}, key);
  else if (key === "Enter" && several(current)) {
    record({digit: current.hands[hand].digit}, String(current.hands[hand].digit));
  } else if ((key === "n" || key === "N") && several(current)) record({not_a_hand: true}, "-");
  else if (key === "Enter" && current && current.digit === null) {
    document.getElementById("review-message").textContent =
      "no hand was found, so the model gave no digit: press the digit, or x";
  } else if (key === "Enter" && current) record({digit: current.digit}, String(current.digit));
  else if (key === "x" || key === "X") record({unusable: true}, "unusable");
  else if (key === "Backspace") back();
  else return false;
  return true;
}

document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (press(e.key)) e.preventDefault();
});
for (const button of document.querySelectorAll(".keys button[data-digit]")) {
  button.addEventListener("click", () => press(button.dataset.digit));
}
document.getElementById("key-accept").addEventListener("click", () => press("Enter"));
document.getElementById("key-unusable").addEventListener("click", () => press("x"));
document.getElementById("key-not-hand").addEventListener("click", () => press("n"));
document.getElementById("key-back").addEventListener("click", () => press("Backspace"));
refill();
