// Shared by every page: the CSRF token for posts, JSON errors as one line, bar charts,
// how an image was read.
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

async function api(url, options = {}) {
  const headers = Object.assign({"X-CSRF-Token": CSRF}, options.headers || {});
  const response = await fetch(url, Object.assign({}, options, {headers}));
  const body = await response.json().catch(() => ({detail: response.statusText}));
  if (!response.ok) throw new Error(body.detail || ("HTTP " + response.status));
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// columns: [{label, value, cls}] drawn as bars scaled to the largest value; markAt: a
// threshold's line, or several as [{at, title}].
function barChart(container, columns, markAt) {
  container.replaceChildren();
  const top = Math.max(1, ...columns.map(c => c.value));
  for (const c of columns) {
    const bar = el("div", {class: "b", title: c.title || String(c.value)});
    bar.style.height = (100 * c.value / top) + "%";
    container.append(el("div", {class: "col " + (c.cls || "")},
      el("span", {text: c.shown !== undefined ? c.shown : String(c.value)}), bar,
      el("span", {text: c.label})));
  }
  const marks = markAt === undefined ? [] :
    Array.isArray(markAt) ? markAt : [{at: markAt, title: "threshold"}];
  for (const mark of marks) {
    const line = el("div", {class: "threshold", title: mark.title});
    line.style.left = (mark.at * 100) + "%";
    container.append(line);
  }
}

// "1 photo", "2 photos".
function plural(n, word, words = word + "s") { return `${n} ${n === 1 ? word : words}`; }

function percent(x) { return x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%"; }

const NO_HAND = "no hand found";
// How a reading ends when a hand is unlike every hand the model trained on: read, below
// any threshold (serving/reader.py UNFAMILIAR).
const UNFAMILIAR = "unlike the training hands";

// The annotated photo's colours (serving/preview.py draw_hands): a hand read at or above
// the job's threshold green, below it orange; whichever hand gave the answer.
const HAND_COLOURS = "Hands in green: read at or above the threshold; in orange: below it.";

// How a results row was read, in words, for under its annotated photo.
function readingText(image) {
  if (image.status !== "done") return image.status;
  if (!image.reading) return "";
  if (image.reading === NO_HAND) return "no hand found: the hand finder saw none";
  return `read from the ${image.reading}. ${HAND_COLOURS}`;
}

// The square the landmark model read (/api/images/{id}/hand.png), or nothing for a row
// without a hand (a 404 hides it too).
function showCrop(figure, img, image) {
  const hasHand = image.status === "done" && image.digit !== null && image.reading !== NO_HAND;
  figure.hidden = !hasHand;
  img.onerror = () => { figure.hidden = true; };
  if (hasHand) img.src = `/api/images/${image.id}/hand.png`;
  else img.removeAttribute("src");
}
