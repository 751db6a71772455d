// Draws every chart of the monitoring page from the JSON figure in its <script type="application/json"> block.
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) return;
    for (const el of document.querySelectorAll("[data-figure]")) {
      const data = document.getElementById(el.dataset.figure);
      if (!data) continue;
      const figure = JSON.parse(data.textContent);
      window.Plotly.newPlot(el, figure.data, figure.layout, {responsive: true, displaylogo: false}).then(() => {
        el.dataset.rendered = "true";
      });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
