/* The results key on /thanks: a copy button, and the key field selects itself on focus.
   Without this script the key still sits in a read-only field, ready to select and copy by hand. */
(function () {
  "use strict";

  Array.prototype.forEach.call(document.querySelectorAll("[data-select-on-focus]"), function (field) {
    field.addEventListener("focus", function () { field.select(); });
    field.addEventListener("click", function () { field.select(); });
  });

  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentNode.querySelector(".copy-status");
    if (!field) {
      return;
    }
    function say(text) {
      if (status) {
        status.textContent = text;
      }
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      field.focus();
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () {
          say("Copied.");
        }, function () {
          say("Press Ctrl+C (or \u2318C) to copy the selected key.");
        });
        return;
      }
      // Plain HTTP (not a secure context): the older command still copies a selection.
      var copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (e) {
        copied = false;
      }
      say(copied ? "Copied." : "Press Ctrl+C (or \u2318C) to copy the selected key.");
    });
  });
})();
