// The job page's webhook line (rendered by the server): brought up to date every 3 s
// until the webhook is delivered or given up. Apart from job.js on purpose: one line,
// one request, nothing shared.
(function () {
  const line = document.getElementById("webhook");
  const job = document.getElementById("job");
  if (!line || !job) return;
  const settled = (state) => state === "delivered" || state === "failed";
  async function refresh() {
    if (settled(line.dataset.state)) return;
    try {
      const answer = await fetch(`/api/jobs/${job.dataset.job}`, {credentials: "same-origin"});
      if (answer.ok) {
        const webhook = (await answer.json()).webhook;
        if (webhook) {
          line.textContent = webhook.line;
          line.dataset.state = webhook.state;
        }
      }
    } catch (error) { /* the server is away: try again on the next tick */ }
    if (!settled(line.dataset.state)) setTimeout(refresh, 3000);
  }
  setTimeout(refresh, 3000);
})();
