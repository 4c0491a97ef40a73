// The job page's selection and bulk review: tick tiles (shift: a range), or take every
// image under the current filter (counted by the server, not only the tiles loaded), then
// give them one digit or "unusable" in one request (POST /api/jobs/{id}/reviews).
"use strict";
const CONFIRM_OVER = 50;
const selected = new Set();
let anchor = null;  // the last tile ticked: a shift-click ticks from it
let everything = null;  // {count, where}: all the filter matched when asked

function tiles() { return [...document.querySelectorAll("#grid .tile")]; }

function showSelection() {
  const count = everything ? everything.count : selected.size;
  const none = count === 0;
  document.getElementById("selection-count").textContent = everything ?
    `All ${count} images under this filter selected` :
    none ? "Click a tile's box to select it (shift-click: a range)." :
    `${count} image${count === 1 ? "" : "s"} selected`;
  document.getElementById("select-none").hidden = none;
  document.getElementById("bulk-keys").hidden = none;
  for (const node of tiles()) {
    const on = everything !== null || selected.has(node.image.id);
    node.classList.toggle("selected", on);
    node.querySelector(".pick").checked = on;
  }
  document.getElementById("selection").dataset.count = String(count);
}

function clearSelection() {
  selected.clear();
  everything = null;
  anchor = null;
  showSelection();
}

function tick(node, shift) {
  if (everything) {  // narrowing "all" starts from the tiles shown
    for (const t of tiles()) selected.add(t.image.id);
    everything = null;
  }
  const id = node.image.id;
  const on = !selected.has(id);
  const all = tiles();
  const from = anchor ? all.findIndex(t => t.image.id === anchor) : -1;
  if (shift && from >= 0) {
    const to = all.indexOf(node);
    for (const t of all.slice(Math.min(from, to), Math.max(from, to) + 1)) {
      if (on) selected.add(t.image.id); else selected.delete(t.image.id);
    }
  } else if (on) selected.add(id); else selected.delete(id);
  anchor = id;
  showSelection();
}

window.onTile = node => {
  const pick = node.querySelector(".pick");
  const on = everything !== null || selected.has(node.image.id);
  pick.checked = on;
  node.classList.toggle("selected", on);
  pick.addEventListener("click", event => {
    // No preventDefault: a cancelled click puts the box back as it was once the handlers
    // have run, undoing what showSelection set (a shift-click's box left unticked).
    event.stopPropagation();  // the tile's own click opens the image
    tick(node, event.shiftKey);
  });
};
window.onGridReset = clearSelection;

async function selectAll() {
  const where = filterObject();
  const answer = await api(`/api/jobs/${JOB}/images/count?` +
                           new URLSearchParams(Object.entries(where).map(([k, v]) => [k, String(v)])));
  selected.clear();
  everything = {count: answer.count, where};
  showSelection();
}

async function give(answer) {
  const message = document.getElementById("bulk-message");
  const count = everything ? everything.count : selected.size;
  if (!count) return;
  const what = answer.unusable ? "mark them unusable" : `give them the digit ${answer.digit}`;
  if (count > CONFIRM_OVER && !window.confirm(`${count} images: ${what}?`)) return;
  const body = everything ? {filter: everything.where, expected: everything.count, ...answer}
                          : {image_ids: [...selected], ...answer};
  try {
    const done = await api(`/api/jobs/${JOB}/reviews`, {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    message.className = "message";
    message.textContent = `${plural(done.answered, "image")}: ` +
      (answer.unusable ? "unusable" : `digit ${answer.digit}`);
  } catch (error) {
    message.className = "message error";
    message.textContent = error.message;
    return;
  }
  clearSelection();
  await loadImages(true);
  reviewsChanged();
}

document.getElementById("select-all").addEventListener("click", () => selectAll().catch(error => {
  document.getElementById("bulk-message").textContent = error.message;
}));
document.getElementById("select-none").addEventListener("click", clearSelection);
for (const button of document.querySelectorAll(".bulk-digit")) {
  button.addEventListener("click", () => give({digit: Number(button.dataset.digit)}));
}
document.getElementById("bulk-unusable").addEventListener("click", () => give({unusable: true}));
