// Live progress of a revision: polls its JSON and updates the steps in place until it is final; other scripts of
// the page hear each answer as a "revision:update" event.
(function () {
  "use strict";
  const list = document.getElementById("steps");
  if (!list || list.dataset.final === "true") return;
  const classes = {live: "ok", succeeded: "ok", queued: "run", running: "run", failed: "bad", rolled_back: "bad", skipped: "skip"};
  const label = (s) => s.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
  const time = (iso) => iso ? new Date(iso).toLocaleTimeString([], {hour12: false}) : "";

  function render(revision) {
    for (const step of revision.steps) {
      const item = list.querySelector(`[data-step="${step.name}"]`);
      if (!item) continue;
      item.dataset.status = step.status;
      item.querySelector(".dot").className = "dot " + (classes[step.status] || "idle");
      const message = item.querySelector(".message");
      if (step.status === "skipped") {  // skipped is not pending: nothing to do here (the reason follows)
        const pill = document.createElement("span");
        pill.className = "pill skip";
        pill.textContent = "Skipped";
        const reason = document.createElement("span");
        reason.className = "muted";
        reason.textContent = step.message;
        message.replaceChildren(pill, reason);
      } else {
        message.textContent = step.message || label(step.status);
      }
      const took = step.started_at && step.finished_at ? ` · ${((new Date(step.finished_at) - new Date(step.started_at)) / 1000).toFixed(1)} s` : "";
      item.querySelector(".when").textContent = time(step.started_at) + took;
      item.querySelector("pre").textContent = step.log || "(no output yet)";
      if (step.status === "running" || step.status === "failed") item.querySelector("details").open = true;
    }
    const pill = document.getElementById("revision-status");
    pill.textContent = label(revision.status);
    pill.className = "pill " + (classes[revision.status] || "idle");
    const error = document.getElementById("revision-error");
    error.hidden = !revision.error;
    error.textContent = revision.error;
    document.dispatchEvent(new CustomEvent("revision:update", {detail: revision}));  // rollout.js redraws its card
    return ["live", "failed", "rolled_back", "superseded"].includes(revision.status);
  }

  async function poll() {
    try {
      const response = await fetch(list.dataset.statusUrl, {headers: {Accept: "application/json"}, credentials: "same-origin"});
      if (response.ok && render(await response.json())) {
        // show the final page (endpoint, actions); by GET, also when this page answered a refused button's POST
        const page = list.dataset.pageUrl;
        window.setTimeout(() => (window.location.pathname === page ? window.location.reload() : window.location.assign(page)), 600);
        return;
      }
    } catch (e) { /* network blip: try again */ }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 500);
})();
