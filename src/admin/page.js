// Refreshes the status page in place: fetches the same page every 2 s and swaps its #status
// element for the fresh one. The server escaped everything in it, and DOMParser runs no scripts.
// When a fetch fails the last data stays, dimmed, under a banner.
(function () {
  "use strict";
  var every = 2000;
  function tick() {
    fetch(location.href, { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("status");
        var old = document.getElementById("status");
        if (fresh && old) { old.replaceWith(fresh); }
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
