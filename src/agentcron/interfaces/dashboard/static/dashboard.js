/* agentcron dashboard: say so when the page can no longer reach its server.
   The daemon serves this page; when it stops, htmx's refreshes fail and the page
   would otherwise keep showing the last rows it got, all looking fine. A failed
   refresh shows the "cannot reach" banner; the next successful one hides it. */
(function () {
  "use strict";
  function banner() { return document.getElementById("unreachable"); }
  function show(reason) {
    var el = banner();
    if (!el) { return; }
    var when = document.getElementById("unreachable-when");
    if (when) { when.textContent = new Date().toLocaleTimeString(); }
    var why = document.getElementById("unreachable-why");
    if (why) { why.textContent = reason; }
    el.hidden = false;
  }
  document.addEventListener("htmx:sendError", function () {
    show("no answer from the server");
  });
  /* A server that is frozen (SIGSTOP) or hangs takes the connection and never
     answers: no error comes, and without a timeout (htmx-config in base.html) the
     page kept its last rows, all looking fine, for as long as that lasted. */
  document.addEventListener("htmx:timeout", function () {
    show("no answer within 10 seconds");
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.status >= 500) { show("the server answered " + xhr.status); }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var el = banner();
    if (el && event.detail && event.detail.successful) { el.hidden = true; }
  });
}());
