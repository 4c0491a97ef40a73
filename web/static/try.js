// One photo: upload one or take one with the camera; show the hands the reader found on
// the photo (an SVG drawn from the answer's JSON), the square it read, and its answer.
"use strict";
const message = document.getElementById("try-message");
const video = document.getElementById("camera");
const SVG = "http://www.w3.org/2000/svg";
// The bones between the 21 landmarks (serving/preview.py's BONES).
const BONES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [5, 9], [9, 10],
  [10, 11], [11, 12], [9, 13], [13, 14], [14, 15], [15, 16], [13, 17], [0, 17], [17, 18],
  [18, 19], [19, 20]];
const SHOWN = 480; // the photo's longest side on the page, in CSS pixels
const WIDE = 960; // a wide photo (a group side by side) may take this width instead
let photoUrl = null;
let shown = null; // the answer on the page, redrawn when the window's size changes
let photoSent = null; // the photo shown, as sent: "Keep it for review" sends it again
const keepMessage = document.getElementById("keep-message");

function predictForm(blob, name, store) {
  const form = new FormData();
  form.append("file", blob, name);
  const threshold = document.getElementById("threshold").value;
  if (threshold) form.append("threshold", threshold);
  if (store) form.append("store", "true");
  return form;
}

async function classify(blob, name) {
  message.textContent = "classifying...";
  message.className = "message";
  try {
    const answer = await api("/api/predict", {method: "POST", body: predictForm(blob, name)});
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(blob);
    photoSent = {blob, name};
    show(answer, photoUrl);
    message.textContent = "";
    keepMessage.replaceChildren();
    document.getElementById("keep").disabled = false;
  } catch (error) {
    message.textContent = error.message;
    message.className = "message error";
  }
}

// The photo kept as a one-image job (store=true): its answer can then be corrected on the
// review page like any job's, and used to retrain.
document.getElementById("keep").addEventListener("click", async () => {
  const button = document.getElementById("keep");
  if (!photoSent) return;
  button.disabled = true;
  keepMessage.className = "message";
  keepMessage.textContent = "keeping...";
  try {
    const answer = await api("/api/predict", {method: "POST",
      body: predictForm(photoSent.blob, photoSent.name, true)});
    // Below the threshold it waits in the job's review queue; above, its page shows it.
    keepMessage.replaceChildren("Kept as a job of its own: ", answer.below_threshold ?
      el("a", {href: `/jobs/${answer.job_id}/review`, id: "kept-link", text: "review it"}) :
      el("a", {href: `/jobs/${answer.job_id}`, id: "kept-link", text: "open it"}), ".");
  } catch (error) {
    button.disabled = false;
    keepMessage.className = "message error";
    keepMessage.textContent = error.message;
  }
});

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// The hands in the photo's own pixels (the viewBox): green, or orange below the threshold.
function drawHands(svg, hands, [width, height]) {
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const perScreenPixel = width / Math.max(1, svg.getBoundingClientRect().width || SHOWN);
  svg.replaceChildren();
  hands.forEach((hand) => {
    const group = svgEl("g", {class: "hand " + (hand.below_threshold ? "other" : "answer")});
    const [x0, y0, x1, y1] = hand.box;
    group.append(svgEl("rect", {class: "box", x: x0, y: y0, width: x1 - x0, height: y1 - y0}));
    for (const [a, b] of BONES) {
      const [xa, ya] = hand.landmarks[a];
      const [xb, yb] = hand.landmarks[b];
      group.append(svgEl("line", {class: "bone", x1: xa, y1: ya, x2: xb, y2: yb}));
    }
    for (const [x, y] of hand.landmarks) {
      group.append(svgEl("circle", {class: "point", cx: x, cy: y, r: 3.5 * perScreenPixel}));
    }
    if (hand.digit !== null && hand.digit !== undefined) {
      const label = svgEl("text", {class: "label", x: x0, y: Math.max(y0 - 5 * perScreenPixel,
        16 * perScreenPixel), "font-size": 18 * perScreenPixel});
      label.textContent = String(hand.digit);
      group.append(label);
    }
    svg.append(group);
  });
}

function showPhoto(url, size) {
  const stage = document.getElementById("answer-stage");
  const photo = document.getElementById("answer-photo");
  const [width, height] = size;
  // A group photo 4:1 drawn 480 px wide leaves each hand a thumbnail: wide photos keep
  // their height up to SHOWN and take up to WIDE of the width.
  const scale = width > 1.5 * height ? Math.min(WIDE / width, SHOWN / height) :
    SHOWN / Math.max(width, height);
  stage.style.width = Math.round(width * scale) + "px";
  stage.style.aspectRatio = `${width} / ${height}`;
  stage.classList.remove("unshown");
  photo.hidden = false;
  // A format the browser cannot show (HEIC): the hands are drawn on a grey stage.
  photo.onerror = () => { photo.hidden = true; stage.classList.add("unshown"); };
  photo.src = url;
}

function show(answer, url) {
  const section = document.getElementById("answer");
  section.hidden = false;
  shown = answer;
  showPhoto(url, answer.photo_size);
  drawHands(document.getElementById("answer-overlay"), answer.hands, answer.photo_size);
  const count = answer.hands.length;
  const found = count > 0;
  // A hand set aside as resting (fingers down) is not drawn: the reading's end says so.
  // A hand unlike every training hand is said last (serving/reader.py UNFAMILIAR).
  const reading = answer.reading || "";
  const resting = reading.match(/, (\d+ more pointing down, not read|pointing down)(,|$)/);
  const unfamiliar = reading.endsWith(", " + UNFAMILIAR);
  document.getElementById("answer-reading").textContent = !found ? "no hand found" :
    count > 1 ? `${count} hands, read left to right (orange: below the threshold)` +
      (resting ? `; ${resting[1]}` : "") + (unfamiliar ? `; ${UNFAMILIAR}` : "") :
    `read from the ${reading}`;
  const crop = document.getElementById("answer-crop");
  document.getElementById("answer-crop-figure").hidden = !answer.crop_png;
  document.getElementById("answer-crop-caption").textContent = count > 1 ?
    "what was read of the first hand: the 224 x 224 square around it" :
    "what was read: the 224 x 224 square around the hand";
  if (answer.crop_png) crop.src = "data:image/png;base64," + answer.crop_png;
  else crop.removeAttribute("src");

  const headline = document.getElementById("answer-headline");
  if (count > 1) {
    headline.replaceChildren("digits ", el("span", {id: "answer-digit", text: answer.digits}));
  } else if (found) {
    headline.replaceChildren("digit ", el("span", {id: "answer-digit", text: answer.digit}));
  } else {
    headline.textContent = "No hand found in this photo";
  }
  headline.className = "big" + (found ? "" : " none");
  document.getElementById("answer-scores").hidden = !found;
  document.getElementById("answer-hint").hidden = found;
  // A photo is as sure as its least sure hand (what the threshold is checked against).
  document.getElementById("answer-confidence").textContent = count > 1 ?
    `${percent(answer.confidence)}, the least sure of the ${count} hands` :
    percent(answer.confidence);
  const flag = document.getElementById("answer-flag");
  // Below it whatever the threshold: say why, not "uncertain" (the model may be sure).
  const why = unfamiliar ? "a hand unlike every hand the model was trained on" : "uncertain";
  flag.textContent = answer.below_threshold ?
      `below the threshold ${answer.threshold} (${why})` : `above the threshold ${answer.threshold}`;
  flag.className = "flag" + (answer.below_threshold ? " low" : "");
  document.getElementById("answer-model").textContent = answer.model_version;
  const chart = document.getElementById("answer-probabilities");
  chart.hidden = !answer.probabilities;
  barChart(chart, (answer.probabilities || []).map((p, d) => ({
    label: String(d), value: p, shown: percent(p), cls: d === answer.digit ? "top" : ""})));
  section.dataset.digit = count > 1 ? answer.digits : found ? String(answer.digit) : "none";
}

window.addEventListener("resize", () => {
  if (shown) drawHands(document.getElementById("answer-overlay"), shown.hands, shown.photo_size);
});

document.getElementById("photo").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) classify(file, file.name);
});

document.getElementById("camera-start").addEventListener("click", async () => {
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({video: true, audio: false});
    video.hidden = false;
    document.getElementById("camera-shoot").hidden = false;
  } catch (error) {
    message.textContent = "no camera: " + error.message;
    message.className = "message error";
  }
});

document.getElementById("camera-shoot").addEventListener("click", () => {
  const canvas = document.getElementById("snapshot");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob(blob => classify(blob, "camera.png"), "image/png");
});
