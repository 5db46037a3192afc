/* Draws the charts whose plotly figures the page embeds as JSON; the tables beside them need no script. */
(function () {
  "use strict";

  function draw() {
    if (!window.Plotly) {
      return;
    }
    var blocks = document.querySelectorAll('script[type="application/json"][data-chart]');
    Array.prototype.forEach.call(blocks, function (block) {
      var target = document.getElementById(block.getAttribute("data-chart"));
      if (!target) {
        return;
      }
      var figure = JSON.parse(block.textContent);
      // Shown before drawing: plotly measures the element's width.
      target.hidden = false;
      window.Plotly.newPlot(target, figure.data, figure.layout, figure.config);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
