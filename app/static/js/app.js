// Small behaviours that would otherwise need inline handlers, which the Content-Security-Policy
// forbids: a <select data-autosubmit> submits its form when changed.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });
})();
