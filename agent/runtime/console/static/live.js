// The "live" mark in the header: lit while the page's event stream is open.
(function () {
  "use strict";
  function mark(on) {
    const live = document.getElementById("live");
    if (live) live.classList.toggle("on", on);
  }
  document.addEventListener("htmx:sseOpen", function () { mark(true); });
  document.addEventListener("htmx:sseError", function () { mark(false); });
  document.addEventListener("htmx:sseClose", function () {
    // The server closes a workflow's stream when the workflow has ended: nothing more
    // will change on this page.
    mark(false);
    const live = document.getElementById("live");
    if (live) live.textContent = "final";
  });
})();
