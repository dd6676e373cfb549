// Candidate page: its curves (accuracy and loss, training and validation, linear or log
// axis) drawn from the page's data, then kept live over the search's websocket, which
// sends only this candidate's events when asked with ?candidate=<id>.
(function () {
  "use strict";
  var root = document.getElementById("candidate");
  if (!root) return;
  var C = window.NASCharts;
  var config = JSON.parse(document.getElementById("candidate-config").textContent);
  var curve = {};   // epoch -> point
  var lastSeq = 0, retryMs = 500, drawTimer = null;

  function add(e) {
    if (e.candidate !== config.candidate_id) return;
    var old = curve[e.epoch];
    if (old && old.seq === e.seq) return;
    curve[e.epoch] = e;
    lastSeq = Math.max(lastSeq, e.seq);
  }

  function series(metric, color, labelText) {
    var pts = Object.keys(curve).map(function (k) { return curve[k]; }).sort(function (a, b) { return a.epoch - b.epoch; })
      .map(function (p) { return { x: p.epoch, y: p[metric], seq: p.seq }; });
    return { id: metric, label: labelText, color: color, points: pts };
  }

  function draw() {
    drawTimer = null;
    var scale = document.getElementById("cand-scale").value;
    var xMax = Math.max(config.epochs || 1, Object.keys(curve).length);
    C.lineChart(document.getElementById("accuracy-chart"),
      [series("val_accuracy", "#2458d6", "validation accuracy"), series("train_accuracy", "#e67e22", "training accuracy")],
      { metric: "accuracy", yLabel: "accuracy", yScale: scale, xMax: xMax });
    C.lineChart(document.getElementById("loss-chart"),
      [series("val_loss", "#2458d6", "validation loss"), series("train_loss", "#e67e22", "training loss")],
      { metric: "loss", yLabel: "loss", yScale: scale, xMax: xMax });
    document.getElementById("curves-empty").hidden = Object.keys(curve).length > 0;
    root.dataset.points = Object.keys(curve).length;
  }

  function scheduleDraw() { if (!drawTimer) drawTimer = setTimeout(draw, 250); }

  function showCandidate(c) {
    var chip = document.getElementById("candidate-state");
    chip.textContent = c.state;
    chip.className = "state state-" + c.state;
    root.querySelectorAll("[data-field]").forEach(function (dd) {
      var v = c[dd.dataset.field];
      if (v === undefined) return;
      if (v === null || v === "") dd.textContent = "—";
      else if (dd.dataset.digits) dd.textContent = Number(v).toFixed(Number(dd.dataset.digits));
      else if (dd.dataset.format === "int") dd.textContent = Number(v).toLocaleString();
      else dd.textContent = v;
    });
  }

  function handle(event) {
    if (event.type === "snapshot") {
      event.epochs.forEach(add);
      if (event.candidates.length) showCandidate(event.candidates[0]);
    } else if (event.type === "epoch") {
      add(event);
    } else if (event.type === "candidate" && event.candidate.id === config.candidate_id) {
      if (event.reset) curve = {};
      showCandidate(event.candidate);
    }
    scheduleDraw();
  }

  function setConnection(text, lost) {
    var el = document.getElementById("connection");
    el.textContent = text;
    el.classList.toggle("lost", !!lost);
    root.dataset.connection = lost ? "lost" : text;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + root.dataset.wsPath + "?candidate=" + config.candidate_id + "&after=" + lastSeq);
    socket.onopen = function () { retryMs = 500; setConnection("live"); };
    socket.onmessage = function (m) { handle(JSON.parse(m.data)); };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4404) { setConnection("This search is not available to you.", true); return; }
      var wait = retryMs;
      retryMs = Math.min(retryMs * 2, 10000);
      setConnection("connection lost — reconnecting in " + Math.round(wait / 100) / 10 + " s…", true);
      setTimeout(connect, wait);
    };
  }

  config.curve.forEach(add);
  document.getElementById("cand-scale").addEventListener("change", draw);
  draw();
  connect();
})();
