// Live search page: a websocket snapshot from Postgres, then pushed events.
// Reconnects by itself with back-off and asks for every epoch after the last
// sequence number it saw; epochs it already has are dropped by sequence number,
// so a dropped connection leaves no gap and no duplicate point.
(function () {
  "use strict";
  var root = document.getElementById("search");
  if (!root) return;

  var state = {
    search: null,
    candidates: {},        // id -> candidate data
    curves: {},            // candidate id -> [{epoch, val_accuracy, seq}]
    seenSeq: new Set(),
    lastSeq: 0,
    socket: null,
    retryMs: 500,
    drawPending: false,
  };
  var SVG_NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#2458d6", "#d6462f", "#1e7d32", "#8e44ad", "#e67e22", "#16a085", "#c0392b", "#2c3e50", "#7f8c8d", "#b7950b"];
  var checkpointTemplate = root.dataset.checkpointUrl; // .../candidates/0/checkpoint.pt

  function setConnection(text, lost) {
    var el = document.getElementById("connection");
    el.textContent = text;
    el.classList.toggle("lost", !!lost);
    root.dataset.connection = lost ? "lost" : text;
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + root.dataset.wsPath + "?after=" + state.lastSeq;
    var socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = function () { state.retryMs = 500; setConnection("live"); };
    socket.onmessage = function (message) { handle(JSON.parse(message.data)); };
    socket.onclose = function (event) {
      if (event.code === 4401 || event.code === 4404) {
        setConnection("This search is not available to you.", true);
        return;
      }
      var wait = state.retryMs;
      state.retryMs = Math.min(state.retryMs * 2, 10000);
      setConnection("connection lost — reconnecting in " + Math.round(wait / 100) / 10 + " s…", true);
      setTimeout(connect, wait);
    };
  }

  function handle(event) {
    if (event.type === "snapshot") {
      state.search = event.search;
      event.candidates.forEach(function (c) { state.candidates[c.id] = c; });
      event.epochs.forEach(addEpoch);
    } else if (event.type === "epoch") {
      addEpoch(event);
    } else if (event.type === "candidate") {
      state.candidates[event.candidate.id] = event.candidate;
    } else if (event.type === "search") {
      state.search = event.search;
    }
    scheduleDraw();
  }

  function addEpoch(e) {
    if (state.seenSeq.has(e.seq)) return;  // already drawn before a reconnect
    state.seenSeq.add(e.seq);
    state.lastSeq = Math.max(state.lastSeq, e.seq);
    var curve = state.curves[e.candidate] || (state.curves[e.candidate] = []);
    curve.push({ epoch: e.epoch, val_accuracy: e.val_accuracy, seq: e.seq });
    curve.sort(function (a, b) { return a.epoch - b.epoch; });
    var c = state.candidates[e.candidate];
    if (c) {
      c.epochs_done = Math.max(c.epochs_done || 0, e.epoch);
      if (c.best_val_accuracy === null || e.val_accuracy > c.best_val_accuracy) c.best_val_accuracy = e.val_accuracy;
    }
  }

  // Redraw at most once per animation frame however fast events arrive.
  function scheduleDraw() {
    if (state.drawPending) return;
    state.drawPending = true;
    requestAnimationFrame(function () { state.drawPending = false; draw(); });
  }

  function draw() {
    drawSearch();
    drawChart();
    drawLeaderboard();
    root.dataset.lastSeq = state.lastSeq;
    root.dataset.points = state.seenSeq.size;
  }

  function drawSearch() {
    var s = state.search;
    if (!s) return;
    var stateEl = document.getElementById("search-state");
    stateEl.textContent = s.state;
    stateEl.className = "state state-" + s.state;
    var counts = s.counts || {};
    var ended = (counts.finished || 0) + (counts.failed || 0) + (counts.pruned || 0) + (counts.cancelled || 0);
    var pct = s.max_candidates ? Math.round(100 * ended / s.max_candidates) : 0;
    document.getElementById("progress-bar").style.width = pct + "%";
    var text = ended + " / " + s.max_candidates + " candidates done · " + (counts.running || 0) + " running · " +
      (counts.queued || 0) + " queued · " + (counts.failed || 0) + " failed";
    var eta = estimateSecondsLeft(s, ended);
    if (eta !== null && ["queued", "running"].indexOf(s.state) >= 0) text += " · about " + formatDuration(eta) + " left";
    document.getElementById("progress-text").textContent = text;
    var error = document.getElementById("search-error");
    error.hidden = !s.error;
    error.textContent = s.error || "";
    var hasBest = Object.keys(state.candidates).some(function (id) { return state.candidates[id].has_checkpoint; });
    document.getElementById("best-download").hidden = !hasBest;
    var cancel = document.getElementById("cancel-form");
    if (cancel && ["finished", "failed", "cancelled"].indexOf(s.state) >= 0) cancel.hidden = true;
  }

  function estimateSecondsLeft(s, ended) {
    var durations = [];
    Object.keys(state.candidates).forEach(function (id) {
      var c = state.candidates[id];
      if (c.started_at && c.finished_at) durations.push((Date.parse(c.finished_at) - Date.parse(c.started_at)) / 1000);
    });
    if (!durations.length) return null;
    var mean = durations.reduce(function (a, b) { return a + b; }, 0) / durations.length;
    var left = s.max_candidates - ended;
    return Math.max(0, mean * left / Math.max(1, s.parallel));
  }

  function formatDuration(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function svg(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }

  function drawChart() {
    var chart = document.getElementById("chart");
    while (chart.firstChild) chart.removeChild(chart.firstChild);
    var W = 640, H = 300, L = 40, R = 10, T = 10, B = 25;
    var maxEpoch = (state.search && state.search.epochs) || 1;
    var x = function (epoch) { return L + (W - L - R) * (maxEpoch === 1 ? 0.5 : (epoch - 1) / (maxEpoch - 1)); };
    var y = function (acc) { return T + (H - T - B) * (1 - acc); };
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      chart.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "grid" }));
      var label = svg("text", { x: 4, y: y(v) + 4 });
      label.textContent = v.toFixed(2);
      chart.appendChild(label);
    });
    chart.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, "class": "axis" }));
    chart.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, "class": "axis" }));
    var xlabel = svg("text", { x: W / 2, y: H - 5 });
    xlabel.textContent = "epoch (1–" + maxEpoch + ")";
    chart.appendChild(xlabel);
    Object.keys(state.curves).forEach(function (id) {
      var curve = state.curves[id];
      var color = COLORS[(state.candidates[id] ? state.candidates[id].index : id) % COLORS.length];
      var points = curve.map(function (p) { return x(p.epoch) + "," + y(p.val_accuracy); }).join(" ");
      chart.appendChild(svg("polyline", { points: points, stroke: color, "data-candidate": id }));
      curve.forEach(function (p) {
        var dot = svg("circle", { cx: x(p.epoch), cy: y(p.val_accuracy), r: 2.5, fill: color,
                                  "class": "point", "data-seq": p.seq, "data-candidate": id });
        var title = svg("title", {});
        title.textContent = "candidate " + (state.candidates[id] ? state.candidates[id].index : id) +
          ", epoch " + p.epoch + ": " + p.val_accuracy.toFixed(4);
        dot.appendChild(title);
        chart.appendChild(dot);
      });
    });
  }

  function drawLeaderboard() {
    var rows = Object.keys(state.candidates).map(function (id) { return state.candidates[id]; });
    rows.sort(function (a, b) {
      var av = a.best_val_accuracy === null ? -1 : a.best_val_accuracy;
      var bv = b.best_val_accuracy === null ? -1 : b.best_val_accuracy;
      return bv - av || a.index - b.index;
    });
    var body = document.querySelector("#leaderboard tbody");
    var html = rows.map(function (c, i) {
      var download = c.has_checkpoint
        ? '<a class="download" href="' + checkpointTemplate.replace("/candidates/0/", "/candidates/" + c.id + "/") + '">checkpoint</a>'
        : "";
      return '<tr data-candidate="' + c.id + '" data-state="' + c.state + '">' +
        "<td>" + (i + 1) + "</td><td>#" + c.index + "</td>" +
        '<td><code class="arch">' + escapeHtml(c.genotype) + "</code></td>" +
        "<td>" + (c.param_count === null ? "—" : c.param_count.toLocaleString()) + "</td>" +
        "<td>" + c.epochs_done + "</td>" +
        '<td class="best">' + (c.best_val_accuracy === null ? "—" : c.best_val_accuracy.toFixed(4)) + "</td>" +
        "<td>" + (c.test_accuracy === null ? "—" : c.test_accuracy.toFixed(4)) + "</td>" +
        '<td><span class="state state-' + c.state + '" title="' + escapeHtml(c.error || "") + '">' + c.state + "</span></td>" +
        "<td>" + download + "</td></tr>";
    }).join("");
    body.innerHTML = html;
    document.getElementById("leaderboard-empty").hidden = rows.length > 0;
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }

  connect();
})();
