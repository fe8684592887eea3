// Move focus to the error summary so screen readers announce why the form came back.
(function () {
  "use strict";
  var summary = document.querySelector("[role=alert][tabindex]");
  if (summary) {
    summary.focus();
  }
})();
