// The Models page: promote (after a confirmation) and roll back, then show the page again.
"use strict";
const modelsMessage = document.getElementById("models-message");

async function change(url, question) {
  if (!window.confirm(question)) return;
  try {
    const done = await api(url, {method: "POST"});
    modelsMessage.className = "message";
    modelsMessage.textContent = `now serving ${done.name} (${done.after}); was ${done.before}`;
    window.location.reload();
  } catch (error) {
    modelsMessage.className = "message error";
    modelsMessage.textContent = error.message;
  }
}

for (const button of document.querySelectorAll("#models-table button.promote")) {
  const row = button.closest("tr");
  button.addEventListener("click", () => change(
    `/api/models/${encodeURIComponent(row.dataset.version)}/promote`,
    row.dataset.version === "default"
      ? "Serve the default model again? Every worker reads its next batch with it."
      : `Promote ${row.dataset.name} (${row.dataset.version})? Every worker reads its next ` +
        "batch with it."));
}
const rollbackButton = document.getElementById("rollback");
if (rollbackButton) {
  rollbackButton.addEventListener("click", () => change(
    "/api/models/rollback", "Roll back? The model promoted before this one (or the " +
    "default) reads every worker's next batch."));
}
