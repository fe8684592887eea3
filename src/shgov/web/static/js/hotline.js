// The hotline form: choosing a suggested category fills the category field.
(function () {
  "use strict";
  var hints = document.getElementById("hints");
  var select = document.getElementById("category_code");
  if (!hints || !select) { return; }
  hints.addEventListener("click", function (event) {
    var button = event.target.closest("[data-category]");
    if (!button) { return; }
    select.value = button.dataset.category;
    select.focus();
  });
})();
