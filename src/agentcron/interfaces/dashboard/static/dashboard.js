/* agentcron dashboard: say so when the page can no longer reach its server.
   The daemon serves this page; when it stops, htmx's refreshes fail and the page
   would otherwise keep showing the last rows it got, all looking fine. A failed
   refresh shows the "cannot reach" banner; the next successful one hides it.
   An action (a form posted in the background) that gets no answer is told in the
   status line instead: it may still be done, and a server that is only slow (its
   database held locked by another process) is not "stopped". */
(function () {
  "use strict";
  var STOPPED = "The daemon serves this page, so it has probably stopped, and then nothing is firing.";
  var SLOW = "The daemon serves this page: it is frozen or hung, or waits for its database " +
    "(another process can hold it locked); while that lasts nothing may be firing.";
  var FAILING = "agentcron answers but fails just now (its database may be unavailable).";
  function banner() { return document.getElementById("unreachable"); }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  /* the footer's format, in UTC and saying so, never the browser's locale */
  function utc(d) {
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" +
      two(d.getUTCSeconds()) + " UTC";
  }
  function show(reason, meaning) {
    var el = banner();
    if (!el) { return; }
    var now = new Date();
    var when = document.getElementById("unreachable-when");
    if (when) {
      when.textContent = utc(now);
      when.setAttribute("datetime", now.toISOString());
    }
    var why = document.getElementById("unreachable-why");
    if (why) { why.textContent = reason; }
    var what = document.getElementById("unreachable-meaning");
    if (what) { what.textContent = meaning; }
    el.hidden = false;
  }
  function isAction(event) {
    var config = event.detail && event.detail.requestConfig;
    return !!(config && config.verb && String(config.verb).toLowerCase() !== "get");
  }
  function tell(text) {
    var feedback = document.getElementById("feedback");
    if (!feedback) { return; }
    var line = document.createElement("p");
    line.className = "notice bad";
    line.textContent = text + " (" + utc(new Date()) + ")";
    feedback.replaceChildren(line);
  }
  document.addEventListener("htmx:sendError", function (event) {
    if (isAction(event)) {
      tell("No answer to this action: the connection to agentcron failed, so it was " +
        "probably not done. The page shows the state again once it reaches agentcron.");
    }
    show("no answer from the server", STOPPED);
  });
  /* A server that is frozen (SIGSTOP) or hangs takes the connection and never
     answers: no error comes, and without a timeout (htmx-config in base.html) the
     page kept its last rows, all looking fine, for as long as that lasted. */
  document.addEventListener("htmx:timeout", function (event) {
    if (isAction(event)) {
      tell("No answer to this action within 10 seconds: agentcron may be waiting for " +
        "its database (another process can hold it locked). It may still be done: the " +
        "parts of this page that refresh show what the database holds.");
      return;
    }
    show("no answer within 10 seconds", SLOW);
  });
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (!xhr || xhr.status < 500) { return; }
    if (isAction(event)) {
      tell("This action failed: the server answered " + xhr.status + ". It may not " +
        "have been done: the parts of this page that refresh show what the database holds.");
      return;
    }
    show("the server answered " + xhr.status, FAILING);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var el = banner();
    if (el && event.detail && event.detail.successful) { el.hidden = true; }
  });
}());
