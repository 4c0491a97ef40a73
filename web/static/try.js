// One photo: upload one or take one with the camera; show what the model saw and its answer.
"use strict";
const message = document.getElementById("try-message");
const video = document.getElementById("camera");

async function classify(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  const threshold = document.getElementById("threshold").value;
  if (threshold) form.append("threshold", threshold);
  message.textContent = "classifying...";
  message.className = "message";
  try {
    const answer = await api("/api/predict", {method: "POST", body: form});
    show(answer);
    message.textContent = "";
  } catch (error) {
    message.textContent = error.message;
    message.className = "message error";
  }
}

function show(answer) {
  document.getElementById("answer").hidden = false;
  document.getElementById("answer-preview").src = "data:image/png;base64," + answer.preview_png;
  document.getElementById("answer-digit").textContent = answer.digit;
  document.getElementById("answer-confidence").textContent = percent(answer.confidence);
  const flag = document.getElementById("answer-flag");
  flag.textContent = answer.below_threshold ?
      `below the threshold ${answer.threshold} (uncertain)` : `above the threshold ${answer.threshold}`;
  flag.className = "flag" + (answer.below_threshold ? " low" : "");
  document.getElementById("answer-model").textContent = answer.model_version;
  barChart(document.getElementById("answer-probabilities"), answer.probabilities.map((p, d) => ({
    label: String(d), value: p, shown: percent(p), cls: d === answer.digit ? "top" : ""})));
  document.getElementById("answer").dataset.digit = String(answer.digit);
}

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
