// The rollout card of a revision page: draws its charts, counts down to the next analysis, and swaps in a fresh
// card (from its data-url) when revision.js reports that the rollout moved (weight, pause, status, new checks).
(function () {
  "use strict";
  let offset = 0;  // server clock minus browser clock, so the countdown does not depend on the browser's clock

  const card = () => document.getElementById("rollout");

  function draw(root) {
    if (!window.Plotly) return;
    for (const el of root.querySelectorAll("[data-figure]")) {
      const data = document.getElementById(el.dataset.figure);
      if (!data) continue;
      const figure = JSON.parse(data.textContent);
      window.Plotly.react(el, figure.data, figure.layout, {responsive: true, displaylogo: false}).then(() => {
        el.dataset.rendered = "true";
      });
    }
  }

  function adopt(root) {
    if (root.dataset.now) offset = Date.parse(root.dataset.now) - Date.now();
    draw(root);
    tick();
  }

  const secondsLeft = (root) => Math.round((Date.parse(root.dataset.due) - (Date.now() + offset)) / 1000);

  // The worker writes the checks and the next interval's start in two moves: a card drawn between them has no
  // (or a past) due time, and is fetched again even though the key has not changed since.
  const stale = (root) => root.dataset.phase === "analysing" && (!root.dataset.due || secondsLeft(root) < -3);

  function tick() {
    const root = card();
    const next = root && document.getElementById("rollout-next");
    if (!next || !root.dataset.due) return;
    const left = secondsLeft(root);
    next.textContent = left > 0 ? `· next analysis in ${left >= 60 ? `${Math.floor(left / 60)} min ` : ""}${left % 60} s` : "· analysing the interval…";
  }

  let fetching = false;
  async function refresh(revision) {
    const root = card();
    if (!root || fetching) return;
    const key = [revision.status, revision.canary_weight, revision.paused, revision.analysis.length].join("|");
    if (key === root.dataset.key && !stale(root)) return;
    fetching = true;
    try {
      const response = await fetch(root.dataset.url, {credentials: "same-origin"});
      if (response.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await response.text();
        const fresh = holder.querySelector("#rollout");
        if (fresh) {
          root.replaceWith(fresh);
          adopt(fresh);
        }
      }
    } catch (e) { /* network blip: the next report tries again */ }
    window.setTimeout(() => { fetching = false; }, 1000);  // at most one card a second
  }

  document.addEventListener("revision:update", (event) => refresh(event.detail));
  function start() {
    const root = card();
    if (!root) return;
    adopt(root);
    window.setInterval(tick, 1000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
