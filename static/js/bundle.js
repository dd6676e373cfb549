// Model bundle panels: while a bundle builds (a long action), ask its status once a
// second and move the progress bar; when the build ends, swap in the finished panel.
// Panels that are not building make no request at all.
(function () {
  "use strict";

  function watch(panel) {
    var url = panel.dataset.statusUrl;
    if (!url || panel.dataset.busy !== "true" || panel.dataset.watching) return;
    panel.dataset.watching = "1";
    var failures = 0;

    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (s) {
          failures = 0;
          if (s.state === "queued" || s.state === "running") {
            var bar = panel.querySelector(".bundle-progress");
            var text = panel.querySelector(".bundle-message");
            if (bar) bar.style.width = s.progress + "%";
            if (text) text.textContent = s.progress + "% · " + (s.message || "Waiting for a worker");
            setTimeout(tick, 1000);
            return;
          }
          var holder = document.createElement("div");
          holder.innerHTML = s.html.trim();
          var fresh = holder.firstElementChild;
          panel.replaceWith(fresh);
          watch(fresh);
        })
        .catch(function () {
          failures += 1;
          setTimeout(tick, Math.min(1000 * Math.pow(2, failures), 15000));
        });
    }
    setTimeout(tick, 1000);
  }

  function start() {
    document.querySelectorAll(".bundle-panel").forEach(watch);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
