/* "Print or save as PDF" on the results page: shows the button and opens the browser's print dialog.
   The print stylesheet (pulse.css, @media print) decides what goes on paper. The breakdowns by
   practice type sit in closed <details>; they are opened for printing and closed again after
   (browsers with ::details-content print them open even without this script). */
(function () {
  "use strict";

  var opened = [];

  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details.segments:not([open])"), function (d) {
      d.open = true;
      opened.push(d);
    });
  });
  window.addEventListener("afterprint", function () {
    opened.forEach(function (d) { d.open = false; });
    opened = [];
  });

  Array.prototype.forEach.call(document.querySelectorAll("button[data-print]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });
})();
