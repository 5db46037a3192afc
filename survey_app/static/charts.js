/* Draws the charts whose plotly figures the page embeds as JSON, each as it comes near the
   viewport; the tables beside them need no script. plotly.js is fetched only when the first chart
   comes near (this script's data-plotly names it), after the page has loaded: a phone reads the
   text and tables first. Printing draws every chart. The static report loads plotly.js itself. */
(function () {
  "use strict";

  var script = document.currentScript;
  var source = script ? script.getAttribute("data-plotly") : null;
  // Start drawing this far before a chart scrolls into view.
  var AHEAD = "400px 0px";
  var queue = [];
  var requested = false;

  function runQueue() {
    // One chart per task, so that drawing never blocks the page for long.
    var next = queue.shift();
    if (next) {
      next();
      if (queue.length) {
        window.setTimeout(runQueue, 0);
      }
    }
  }

  function withPlotly(then) {
    queue.push(then);
    if (window.Plotly) {
      if (queue.length === 1) {
        window.setTimeout(runQueue, 0);
      }
      return;
    }
    if (requested || !source) {
      return;
    }
    requested = true;
    var tag = document.createElement("script");
    tag.src = source;
    tag.onload = runQueue;
    document.head.appendChild(tag);
  }

  function draw(target) {
    if (target.getAttribute("data-drawn")) {
      return;
    }
    target.setAttribute("data-drawn", "pending");
    withPlotly(function () {
      var block = document.getElementById(target.id + "-data");
      if (!block) {
        return;
      }
      var figure = JSON.parse(block.textContent);
      target.hidden = false;
      window.Plotly.newPlot(target, figure.data, figure.layout, figure.config);
      target.setAttribute("data-drawn", "yes");
    });
  }

  function charts() {
    return Array.prototype.filter.call(document.querySelectorAll(".chart[id]"), function (target) {
      return document.getElementById(target.id + "-data");
    });
  }

  function drawAll() {
    charts().forEach(draw);
  }

  function start() {
    var targets = charts();
    // Shown before drawing, at the figure's own height (the page reserves it): plotly measures the width.
    targets.forEach(function (target) {
      target.hidden = false;
    });
    if (!("IntersectionObserver" in window)) {
      drawAll();
      return;
    }
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          draw(entry.target);
        }
      });
    }, {rootMargin: AHEAD});
    targets.forEach(function (target) {
      observer.observe(target);
    });
  }

  window.addEventListener("beforeprint", drawAll);
  if (document.readyState === "complete") {
    start();
  } else {
    window.addEventListener("load", start);
  }
})();
