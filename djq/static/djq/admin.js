/* djq in the Django admin: confirmation before destructive buttons, copy buttons. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-djq-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  function copied(button) {
    button.classList.add("djq-copied");
    button.setAttribute("title", "Copied");
    setTimeout(function () {
      button.classList.remove("djq-copied");
      button.setAttribute("title", "Copy the full id");
    }, 1200);
  }

  function fallback(text, button) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); copied(button); } catch (err) { /* nothing to do */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".djq-copy");
    if (!button) return;
    event.preventDefault();
    var text = button.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button); },
                                               function () { fallback(text, button); });
    } else {
      fallback(text, button);
    }
  });
})();
