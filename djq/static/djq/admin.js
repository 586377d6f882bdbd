/* djq in the Django admin: confirmation before destructive buttons. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-djq-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);
})();
