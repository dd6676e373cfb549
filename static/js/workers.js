// Workers page: the table the server rendered, kept current by the workers websocket, and
// each row's heartbeat age counted here every second, so a worker that goes silent turns
// "lost" on time even between updates.
(function () {
  "use strict";
  var box = document.getElementById("workers");
  if (!box) return;
  var timeout = Number(box.dataset.timeout) || 60;
  var rows = JSON.parse(document.getElementById("workers-data").textContent);
  var loadedAt = Date.now(), retryMs = 1000;

  function escapeHtml(text) {
    return String(text === null || text === undefined ? "" : text).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }

  // Ages count from the server's measure at load time, so a skewed browser clock does not matter.
  function age(w) { return w.seconds_since_heartbeat + (Date.now() - loadedAt) / 1000; }

  function render() {
    var body = document.querySelector("#worker-table tbody");
    body.innerHTML = rows.map(function (w) {
      var lost = age(w) > timeout;
      var training = w.candidate ? '<a href="' + escapeHtml(w.candidate.url) + '">#' + w.candidate.index + " of " + escapeHtml(w.candidate.search_name) + "</a>"
        : (w.busy ? "another user's search" : "idle");
      return '<tr data-worker="' + escapeHtml(w.name) + '" class="' + (lost ? "lost" : "") + '">' +
        "<td>" + escapeHtml(w.name) + "</td><td>" + escapeHtml(w.host) + "</td><td>" + escapeHtml(w.device || "—") + "</td>" +
        '<td class="status"><span class="state ' + (lost ? "state-failed" : "state-finished") + '">' + (lost ? "lost" : "live") + "</span></td>" +
        '<td class="candidate">' + training + "</td>" +
        '<td class="heartbeat">' + Math.round(age(w)) + " s ago</td>" +
        "<td>" + (w.samples_per_second === null ? "—" : Math.round(w.samples_per_second) + " samples/s") + "</td>" +
        "<td>" + w.epochs_done + "</td></tr>";
    }).join("");
    document.getElementById("worker-table").hidden = rows.length === 0;
    document.getElementById("workers-empty").hidden = rows.length > 0;
  }

  function setConnection(text) { document.getElementById("connection").textContent = text; }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + box.dataset.wsPath);
    socket.onopen = function () { retryMs = 1000; setConnection("live"); box.dataset.connection = "live"; };
    socket.onmessage = function (m) {
      var event = JSON.parse(m.data);
      if (event.type === "workers") { rows = event.workers; loadedAt = Date.now(); render(); }
    };
    socket.onclose = function () {
      box.dataset.connection = "lost";
      setConnection("live updates paused — reconnecting; heartbeat ages still count here");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    };
  }

  render();
  setInterval(render, 1000);
  connect();
})();
