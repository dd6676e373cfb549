// Live search page for searches of any size.
//
// The websocket brings a bounded snapshot (state and counts, one leaderboard page, the curves
// of the candidates the page draws: the top N, the ones the user selected, the running ones),
// then every change as an event. Events only update state; the page redraws at most every
// DRAW_INTERVAL_MS however fast they come. The leaderboard is sorted, filtered and paged by
// the server; live events are merged into the page shown, and only when an event makes that
// page uncertain (a row must come from a page the browser does not hold) is the page fetched
// again, at most every REFRESH_INTERVAL_MS. Nothing is polled.
//
// Reconnects by itself with back-off, telling the server the last sequence number it saw and
// the candidates whose curves it holds; it drops points whose sequence number it has seen,
// so a lost connection leaves no gap and no duplicate point in what it draws.
(function () {
  "use strict";
  var root = document.getElementById("search");
  if (!root) return;
  var config = JSON.parse(document.getElementById("search-config").textContent);
  var C = window.NASCharts;
  var DRAW_INTERVAL_MS = 250;
  var REFRESH_INTERVAL_MS = 2000;
  var MAX_HELD_CURVES = 300;
  var GAP_WAIT_MS = 2000;  // a missing sequence number not filled by then was lost: ask again
  var ENDED = ["finished", "failed", "pruned", "cancelled"];
  var ACTIVE = ["queued", "running"];
  var SORT_FIELDS = { best: "best_val_accuracy", final: "final_val_accuracy", test: "test_accuracy",
                      params: "param_count", flops: "flops", latency: "latency_ms", epochs: "epochs_done", index: "index" };
  var METRIC_LABELS = { val_accuracy: "validation accuracy", train_accuracy: "training accuracy",
                        val_loss: "validation loss", train_loss: "training loss" };
  var storageKey = "nasweb-selected-" + config.search_id;

  var state = {
    search: null,
    cands: {},            // id -> candidate data, for every candidate the page has heard of
    curves: {},           // id -> {epoch: point}
    complete: {},         // ids whose curve the page holds from its first epoch on
    pending: {},          // id -> epochs that arrived while its curve was being fetched
    points: 0, lastSeq: 0,
    seqFloor: 0, seqAbove: {}, seqAboveCount: 0, gapTimer: null,  // every seq <= seqFloor is accounted for
    socket: null, retryMs: 500, deleted: false, haveSent: {},
    selected: loadSelected(), top: [], topN: config.top, topDirty: true,
    lb: { query: queryFromUrl(), rows: [], total: 0, page: 1, pages: 1, offset: 0,
          pageSize: config.page_size, loading: false, stale: false, ready: false },
    refreshTimer: null, lastRefresh: 0,
    progress: { endedSeconds: 0, finishedSeconds: 0, finishedCount: 0, best: [], counted: {} },
    scatter: null, scatterLoading: false,
    dirty: { chart: true, board: true, progress: true, scatter: false },
    drawTimer: null, lastDraw: 0, draws: 0, events: 0, resumes: 0,
    metric: "val_accuracy", yScale: "linear",
  };

  // --- small helpers ---------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function isEnded(c) { return c && ENDED.indexOf(c.state) >= 0; }
  function escapeHtml(text) {
    return String(text === null || text === undefined ? "" : text).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function candidateUrl(id) { return config.urls.candidate.replace("/candidates/0/", "/candidates/" + id + "/"); }
  function checkpointUrl(id) { return config.urls.checkpoint.replace("/candidates/0/", "/candidates/" + id + "/"); }
  function label(c) { return c && c.index !== null && c.index !== undefined ? "#" + c.index : "candidate " + (c ? c.id : "?"); }
  function fmt(v, digits) { return v === null || v === undefined ? "—" : v.toFixed(digits); }
  function formatDuration(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function loadSelected() {
    try { return JSON.parse(sessionStorage.getItem(storageKey) || "[]").map(Number).filter(Boolean); }
    catch (e) { return []; }
  }
  function saveSelected() {
    try { sessionStorage.setItem(storageKey, JSON.stringify(state.selected)); } catch (e) { /* private mode */ }
  }

  // --- the leaderboard view (sort, filters, page) and its URL ----------------------
  function defaultQuery() {
    return { sort: "-best", state: [], acc_min: null, acc_max: null, params_min: null, params_max: null,
             q: "", uses: [], page: 1 };
  }
  function queryFromUrl() {
    var params = new URLSearchParams(location.search), q = defaultQuery();
    if (params.get("sort")) q.sort = params.get("sort");
    q.state = params.getAll("state");
    ["acc_min", "acc_max", "params_min", "params_max"].forEach(function (k) {
      var v = params.get(k);
      if (v !== null && v !== "" && !isNaN(Number(v))) q[k] = Number(v);
    });
    q.q = params.get("q") || "";
    q.uses = params.getAll("uses");
    q.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
    return q;
  }
  function queryParams(q) {
    var params = new URLSearchParams();
    if (q.sort && q.sort !== "-best") params.set("sort", q.sort);
    q.state.forEach(function (s) { params.append("state", s); });
    ["acc_min", "acc_max", "params_min", "params_max"].forEach(function (k) { if (q[k] !== null) params.set(k, q[k]); });
    if (q.q) params.set("q", q.q);
    q.uses.forEach(function (u) { params.append("uses", u); });
    if (q.page > 1) params.set("page", q.page);
    return params;
  }
  function onlyStateFilter(q) {
    return !q.q && !q.uses.length && q.acc_min === null && q.acc_max === null && q.params_min === null && q.params_max === null;
  }
  function filtered(q) { return q.state.length > 0 || !onlyStateFilter(q); }

  // Does candidate c pass the filters? null when the page cannot tell (it lacks c's data).
  function matches(c, q) {
    if (!c) return null;
    if (q.state.length && q.state.indexOf(c.state) < 0) return false;
    var best = c.best_val_accuracy, params = c.param_count;
    if (q.acc_min !== null && (best === null || best === undefined || best < q.acc_min)) return false;
    if (q.acc_max !== null && (best === null || best === undefined || best > q.acc_max)) return false;
    if (q.params_min !== null && (params === null || params === undefined || params < q.params_min)) return false;
    if (q.params_max !== null && (params === null || params === undefined || params > q.params_max)) return false;
    if ((q.q || q.uses.length) && c.placeholder) return null;
    if (q.q && String(c.genotype || "").toLowerCase().indexOf(q.q.toLowerCase()) < 0) return false;
    for (var i = 0; i < q.uses.length; i++) {
      var cut = q.uses[i].indexOf("="), names = q.uses[i].slice(0, cut).split(","), value;
      try { value = JSON.parse(q.uses[i].slice(cut + 1)); } catch (e) { return null; }
      if (!names.some(function (n) { return c.arch && c.arch[n] === value; })) return false;
    }
    return true;
  }

  // The server's order: the sort field (nulls last either way), then the candidate's index.
  function compare(a, b) {
    var sort = state.lb.query.sort, desc = sort.charAt(0) === "-", field = SORT_FIELDS[sort.replace("-", "")] || "best_val_accuracy";
    var ai = a.index === null || a.index === undefined ? Infinity : a.index;
    var bi = b.index === null || b.index === undefined ? Infinity : b.index;
    if (field === "index") return desc ? bi - ai : ai - bi;
    var av = a[field], bv = b[field];
    var an = av === null || av === undefined, bn = bv === null || bv === undefined;
    if (an !== bn) return an ? 1 : -1;
    if (!an && av !== bv) return desc ? bv - av : av - bv;
    return ai - bi;
  }

  function sortRows() {
    state.lb.rows.sort(function (a, b) { return compare(state.cands[a], state.cands[b]); });
  }

  function markStale() {
    state.lb.stale = true;
    if (state.refreshTimer || state.deleted) return;
    var wait = Math.max(0, state.lastRefresh + REFRESH_INTERVAL_MS - Date.now());
    state.refreshTimer = setTimeout(function () { state.refreshTimer = null; fetchBoard(); }, wait);
  }

  // Merge one changed candidate into the page shown; prev is what the page knew before.
  function boardUpdate(c, prev, isNew) {
    var lb = state.lb;
    if (!lb.ready) return;
    state.dirty.board = true;
    if (lb.loading) { lb.stale = true; return; }
    var q = lb.query;
    var now = matches(c, q), before = prev ? matches(prev, q) : (isNew ? false : null);
    if (now === null) { markStale(); return; }
    if (before === true && !now) lb.total -= 1;
    else if (before === false && now) lb.total += 1;
    else if (before === null && now && !onlyStateFilter(q)) markStale();
    var more = lb.offset + lb.rows.length < lb.total;
    var at = lb.rows.indexOf(c.id);
    if (at >= 0) {
      if (!now) {
        lb.rows.splice(at, 1);
        if (lb.offset + lb.rows.length < lb.total) markStale();  // a row from the next page moves up
        return;
      }
      sortRows();
      var to = lb.rows.indexOf(c.id);
      if (more && to === lb.rows.length - 1 && to > at) markStale();  // it may belong to a later page
      if (lb.offset > 0 && to === 0 && to < at) markStale();          // or to an earlier one
      return;
    }
    if (!now) return;
    var full = lb.rows.length >= lb.pageSize;
    var first = state.cands[lb.rows[0]], last = state.cands[lb.rows[lb.rows.length - 1]];
    if (full && last && compare(c, last) > 0) return;                // it sorts onto a later page
    if (c.placeholder) { markStale(); return; }                      // the page lacks its data
    if (lb.offset > 0 && (!first || compare(c, first) < 0 || before !== false)) { markStale(); return; }
    lb.rows.push(c.id);
    sortRows();
    if (lb.rows.length > lb.pageSize) lb.rows.pop();
  }

  function setBoard(board) {
    board.rows.forEach(function (c) { upsert(c); });
    var lb = state.lb;
    lb.rows = board.rows.map(function (c) { return c.id; });
    lb.total = board.total; lb.page = board.page; lb.pages = board.pages; lb.offset = board.offset;
    lb.pageSize = board.page_size; lb.query.page = board.page; lb.ready = true;
    state.dirty.board = true;
  }

  function fetchBoard() {
    var lb = state.lb;
    if (lb.loading) { lb.stale = true; return; }
    lb.loading = true; lb.stale = false;
    state.lastRefresh = Date.now();
    root.dataset.boardLoading = "1";
    $("leaderboard").classList.add("loading");
    var url = config.urls.leaderboard + "?" + queryParams(lb.query).toString();
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (board) { lb.loading = false; setBoard(board); })
      .catch(function () { lb.loading = false; })
      .then(function () {
        root.dataset.boardLoading = "";
        $("leaderboard").classList.remove("loading");
        root.dataset.boardFetches = (Number(root.dataset.boardFetches || 0) + 1);
        if (lb.stale) markStale();
        scheduleDraw();
      });
  }

  function changeView(update) {
    var q = state.lb.query;
    update(q);
    history.replaceState(null, "", location.pathname + (queryParams(q).toString() ? "?" + queryParams(q).toString() : ""));
    fetchBoard();
    syncFilterForm();
  }

  // --- candidates and curves -------------------------------------------------------
  function upsert(c) {
    var prev = state.cands[c.id];
    state.cands[c.id] = prev ? Object.assign(prev, c, { placeholder: false }) : Object.assign({}, c);
    state.topDirty = true;
    return state.cands[c.id];
  }

  function drawnIds() {
    var ids = state.top.slice();
    state.selected.forEach(function (id) { if (ids.indexOf(id) < 0) ids.push(id); });
    return ids;
  }
  function isDrawn(id) { return state.top.indexOf(id) >= 0 || state.selected.indexOf(id) >= 0; }

  function dropCurve(id) {
    var curve = state.curves[id];
    if (curve) state.points -= Object.keys(curve).length;
    delete state.curves[id];
    delete state.complete[id];
  }

  function addPoint(e) {
    if (state.pending[e.candidate]) { state.pending[e.candidate].push(e); return; }
    var curve = state.curves[e.candidate] || (state.curves[e.candidate] = {});
    var old = curve[e.epoch];
    if (old && old.seq === e.seq) return;  // seen before a reconnect
    if (!old) state.points += 1;
    curve[e.epoch] = { epoch: e.epoch, seq: e.seq, val_accuracy: e.val_accuracy, train_accuracy: e.train_accuracy,
                       val_loss: e.val_loss, train_loss: e.train_loss };
    if (isDrawn(e.candidate)) state.dirty.chart = true;
  }

  // Fetch whole curves of drawn candidates whose beginning the page never saw.
  function ensureCurves() {
    var missing = drawnIds().filter(function (id) { return !state.complete[id] && !state.pending[id]; });
    if (!missing.length) return;
    missing.forEach(function (id) { state.pending[id] = []; });
    fetch(config.urls.curves + "?ids=" + missing.join(","), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        data.candidates.forEach(function (c) { upsert(c); });
        missing.forEach(function (id) {
          var buffered = state.pending[id] || [];
          delete state.pending[id];
          dropCurve(id);
          state.complete[id] = true;
          data.epochs.filter(function (e) { return e.candidate === id; }).forEach(addPoint);
          buffered.forEach(addPoint);
        });
      })
      .catch(function () { missing.forEach(function (id) { delete state.pending[id]; }); })
      .then(function () { state.dirty.chart = true; scheduleDraw(); });
  }

  // Curves of ended candidates that are not drawn can never be needed again unless the user
  // selects them (then they are fetched): forget them once the page holds many.
  function pruneCurves() {
    var held = Object.keys(state.complete);
    if (held.length <= MAX_HELD_CURVES) return;
    held.map(Number).forEach(function (id) { if (isEnded(state.cands[id]) && !isDrawn(id)) dropCurve(id); });
  }

  function computeTop() {
    var known = Object.keys(state.cands).map(function (id) { return state.cands[id]; })
      .filter(function (c) { return c.best_val_accuracy !== null && c.best_val_accuracy !== undefined; });
    known.sort(function (a, b) {
      return b.best_val_accuracy - a.best_val_accuracy || (a.index === null ? Infinity : a.index) - (b.index === null ? Infinity : b.index);
    });
    var top = known.slice(0, state.topN).map(function (c) { return c.id; });
    if (top.join(",") !== state.top.join(",")) { state.top = top; state.dirty.chart = true; }
    state.topDirty = false;
  }

  // --- lost events -------------------------------------------------------------------
  // Sequence numbers are consecutive per search and every epoch event reaches every page, so
  // a hole that stays open means the channel layer dropped events (a page that fell behind):
  // the page asks the server, over the open socket, for what it holds after the last
  // unbroken sequence number. A hole left by epochs the server deleted closes the same way.
  function noteSeq(seq) {
    if (seq <= state.seqFloor || state.seqAbove[seq]) return;
    state.seqAbove[seq] = true;
    state.seqAboveCount += 1;
    while (state.seqAbove[state.seqFloor + 1]) {
      delete state.seqAbove[state.seqFloor + 1];
      state.seqAboveCount -= 1;
      state.seqFloor += 1;
    }
    if (state.seqAboveCount > 0 && !state.gapTimer) {
      state.gapTimer = setTimeout(function () {
        state.gapTimer = null;
        if (state.seqAboveCount > 0) requestResume();
      }, GAP_WAIT_MS);
    }
  }

  function raiseFloor(seq) {
    if (seq <= state.seqFloor) return;
    state.seqFloor = seq;
    Object.keys(state.seqAbove).forEach(function (k) {
      if (Number(k) <= seq) { delete state.seqAbove[k]; state.seqAboveCount -= 1; }
    });
    noteSeq(seq);  // absorb what continues right after the floor
  }

  function requestResume() {
    var socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    state.haveSent = {};
    Object.keys(state.complete).forEach(function (id) { state.haveSent[id] = true; });
    var q = state.lb.query;
    state.resumes += 1;
    root.dataset.resumes = state.resumes;
    socket.send(JSON.stringify({
      type: "resume", after: state.seqFloor, have: Object.keys(state.haveSent).map(Number),
      selected: state.selected, top: state.topN,
      leaderboard: { sort: q.sort, state: q.state, acc_min: q.acc_min, acc_max: q.acc_max, params_min: q.params_min,
                     params_max: q.params_max, q: q.q, uses: q.uses, page: q.page },
    }));
  }

  // --- events ----------------------------------------------------------------------
  function handle(event) {
    state.events += 1;
    if (event.type === "snapshot") applySnapshot(event);
    else if (event.type === "epoch") applyEpoch(event);
    else if (event.type === "candidate") applyCandidate(event.candidate, event.reset);
    else if (event.type === "search") applySearch(event.search);
    else if (event.type === "pareto") applyFront(event.front);
    else if (event.type === "alpha") applyEdgeWeights(event.weights);
    scheduleDraw();
  }

  function applySnapshot(s) {
    applySearch(s.search);
    s.candidates.forEach(function (c) { upsert(c); });
    s.drawn.forEach(function (id) {
      if (!state.haveSent[id]) dropCurve(id);
      state.complete[id] = true;
    });
    Object.keys(state.complete).map(Number).forEach(function (id) {
      if (s.drawn.indexOf(id) < 0) dropCurve(id);  // held across a gap: no longer trusted
    });
    s.epochs.forEach(function (e) { addPoint(e); state.lastSeq = Math.max(state.lastSeq, e.seq); noteSeq(e.seq); });
    state.lastSeq = Math.max(state.lastSeq, s.search.last_seq || 0);
    raiseFloor(s.search.last_seq || 0);  // the snapshot accounts for everything up to here
    state.top = s.top.slice(0, state.topN);
    if (s.leaderboard) setBoard(s.leaderboard);
    if (s.progress) {
      var p = state.progress;
      p.endedSeconds = s.progress.ended_seconds; p.finishedSeconds = s.progress.finished_seconds;
      p.finishedCount = s.progress.finished_count; p.counted = {};
      p.best = s.progress.best_so_far.map(function (b) { return { t: Date.parse(b[0]), y: b[1], label: "candidate " + b[2] }; });
    }
    // Finished candidates the scatter never heard of (their events were lost): draw it again.
    if (state.scatter && (s.search.counts || {}).finished !== state.scatter.finished) loadScatter();
    state.dirty.chart = state.dirty.board = state.dirty.progress = true;
    ensureCurves();
  }

  function applyEpoch(e) {
    state.lastSeq = Math.max(state.lastSeq, e.seq);
    noteSeq(e.seq);
    var c = state.cands[e.candidate];
    var prev = c ? Object.assign({}, c) : null;
    if (!c) {
      c = state.cands[e.candidate] = { id: e.candidate, index: null, placeholder: true, state: "running", genotype: "",
        param_count: null, flops: null, latency_ms: null, epochs_done: 0, best_val_accuracy: null,
        final_val_accuracy: null, test_accuracy: null, has_checkpoint: false };
    }
    if (e.epoch >= (c.epochs_done || 0)) { c.epochs_done = e.epoch; c.final_val_accuracy = e.val_accuracy; }
    if (c.best_val_accuracy === null || c.best_val_accuracy === undefined || e.val_accuracy > c.best_val_accuracy) {
      c.best_val_accuracy = e.val_accuracy;
      state.topDirty = true;
    }
    if (!state.complete[e.candidate] && e.epoch === 1 && !state.pending[e.candidate]) {
      dropCurve(e.candidate);
      state.complete[e.candidate] = true;  // seen from its first epoch: its curve is whole
    }
    if (state.complete[e.candidate] || state.pending[e.candidate]) addPoint(e);
    boardUpdate(c, prev, false);
  }

  // DARTS: the latest softmax weight of every op on every edge, as the job streams them.
  function applyEdgeWeights(weights) {
    var body = document.querySelector("#darts-weights tbody");
    if (!body) return;
    body.innerHTML = Object.keys(weights).map(function (edge) {
      return '<tr data-edge="' + edge + '"><th>' + edge + "</th>" + Object.keys(weights[edge]).map(function (op) {
        return '<td data-op="' + op + '">' + op + " " + weights[edge][op].toFixed(3) + "</td>";
      }).join("") + "</tr>";
    }).join("");
  }

  function applyCandidate(data, reset) {
    var collapse = document.getElementById("darts-collapse");
    if (collapse && data.skip_collapse !== undefined) collapse.hidden = !data.skip_collapse;
    var prev = state.cands[data.id] ? Object.assign({}, state.cands[data.id]) : null;
    var isNew = !prev && data.state === "queued";
    if (reset) dropCurve(data.id);
    var c = upsert(data);
    if (isEnded(c) && !(prev && isEnded(prev)) && !state.progress.counted[c.id]) {
      state.progress.counted[c.id] = true;
      if (c.started_at && c.finished_at) {
        var seconds = (Date.parse(c.finished_at) - Date.parse(c.started_at)) / 1000;
        state.progress.endedSeconds += seconds;
        if (c.state === "finished") { state.progress.finishedSeconds += seconds; state.progress.finishedCount += 1; }
      }
      var best = state.progress.best.length ? state.progress.best[state.progress.best.length - 1].y : null;
      if (c.finished_at && c.best_val_accuracy !== null && (best === null || c.best_val_accuracy > best)) {
        state.progress.best.push({ t: Date.parse(c.finished_at), y: c.best_val_accuracy, label: label(c) });
      }
      if (state.scatter && c.state === "finished") {
        state.scatter.finished += 1;
        if (c.best_val_accuracy !== null) state.scatter.points[c.id] = c;
        state.dirty.scatter = true;
      }
    }
    if (c.has_checkpoint) $("best-download").hidden = false;
    state.dirty.progress = true;
    if (isDrawn(c.id)) state.dirty.chart = true;
    boardUpdate(c, prev, isNew);
  }

  function applySearch(s) {
    state.search = s;
    if (s.state === "deleted") {
      state.deleted = true;
      if (state.socket) state.socket.close(1000);
    }
    var q = state.lb.query;
    if (state.lb.ready && onlyStateFilter(q)) {
      var counts = s.counts || {};
      state.lb.total = Object.keys(counts).filter(function (k) { return !q.state.length || q.state.indexOf(k) >= 0; })
        .reduce(function (n, k) { return n + counts[k]; }, 0);
      state.dirty.board = true;
    }
    state.dirty.progress = true;
  }

  function applyFront(front) {
    var on = {};
    front.forEach(function (id) { on[id] = true; });
    Object.keys(state.cands).forEach(function (id) { state.cands[id].on_pareto_front = !!on[id]; });
    state.dirty.scatter = state.dirty.board = true;
  }

  // --- drawing, batched ------------------------------------------------------------
  function scheduleDraw() {
    if (state.drawTimer) return;
    var wait = Math.max(0, state.lastDraw + DRAW_INTERVAL_MS - Date.now());
    state.drawTimer = setTimeout(function () { state.drawTimer = null; draw(); }, wait);
  }

  function draw() {
    state.lastDraw = Date.now();
    state.draws += 1;
    if (state.topDirty) { computeTop(); ensureCurves(); pruneCurves(); }
    if (state.dirty.progress) { drawProgress(); state.dirty.progress = false; }
    if (state.dirty.chart) { drawChart(); state.dirty.chart = false; }
    if (state.dirty.board) { drawBoard(); state.dirty.board = false; }
    if (state.dirty.scatter) { drawScatter(); state.dirty.scatter = false; }
    root.dataset.lastSeq = state.lastSeq;
    root.dataset.points = state.points;
    root.dataset.draws = state.draws;
    root.dataset.events = state.events;
    if (!root.dataset.readyMs && state.lb.ready) {
      root.dataset.readyMs = Math.round(performance.now());
      root.dataset.firstDrawMs = Date.now() - state.lastDraw;
      // The scatter of a multi-objective search opens with the page, fetched once the page
      // is drawn so that it does not hold up the snapshot.
      if ($("pareto-card").open && !state.scatter) loadScatter();
    }
  }

  function drawProgress() {
    var s = state.search;
    if (!s) return;
    var stateEl = $("search-state");
    stateEl.textContent = s.state;
    stateEl.className = "state state-" + s.state;
    var counts = s.counts || {};
    var ended = ENDED.reduce(function (n, k) { return n + (counts[k] || 0); }, 0);
    var pct = s.max_candidates ? Math.min(100, Math.round(100 * ended / s.max_candidates)) : 0;
    $("progress-bar").style.width = pct + "%";
    var text = ended + " / " + s.max_candidates + " candidates done · " + (counts.running || 0) + " running · " +
      (counts.queued || 0) + " queued · " + (counts.failed || 0) + " failed";
    var eta = estimateSecondsLeft(s, ended);
    if (eta !== null && ACTIVE.indexOf(s.state) >= 0) text += " · about " + formatDuration(eta) + " left";
    $("progress-text").textContent = text;
    document.querySelectorAll("#counts [data-state]").forEach(function (chip) {
      chip.querySelector("b").textContent = (counts[chip.dataset.state] || 0).toLocaleString();
    });
    $("eta").textContent = eta === null || ACTIVE.indexOf(s.state) < 0 ? "—" : formatDuration(eta);
    $("gpu-hours").textContent = (deviceSeconds() / 3600).toFixed(2);
    var best = state.progress.best;
    $("best-value").textContent = best.length ? best[best.length - 1].y.toFixed(4) : "—";
    $("best-chart-empty").hidden = best.length > 0;
    $("best-chart").style.display = best.length ? "" : "none";
    if (best.length) C.stepChart($("best-chart"), best, { yLabel: "best val. acc." });
    var error = $("search-error");
    error.hidden = !s.error;
    error.textContent = s.error || "";
    var show = {
      "pause-form": ACTIVE.indexOf(s.state) >= 0, "resume-form": s.state === "paused",
      "cancel-form": ACTIVE.indexOf(s.state) >= 0 || s.state === "paused",
    };
    Object.keys(show).forEach(function (id) { var f = $(id); if (f) f.hidden = !show[id] || state.deleted; });
    if (state.deleted) {
      $("search-deleted").hidden = false;
      document.querySelectorAll(".controls a, #best-download").forEach(function (a) { a.hidden = true; });
      setConnection("This search was deleted.", true);
    }
  }

  function deviceSeconds() {
    var total = state.progress.endedSeconds, now = Date.now();
    Object.keys(state.cands).forEach(function (id) {
      var c = state.cands[id];
      if (c.state === "running" && c.started_at) total += Math.max(0, (now - Date.parse(c.started_at)) / 1000);
    });
    return total;
  }

  function estimateSecondsLeft(s, ended) {
    var p = state.progress;
    if (!p.finishedCount) return null;
    var mean = p.finishedSeconds / p.finishedCount;
    return Math.max(0, mean * (s.max_candidates - ended) / Math.max(1, s.parallel));
  }

  function drawChart() {
    var series = drawnIds().map(function (id) {
      var c = state.cands[id], curve = state.curves[id] || {};
      var pts = Object.keys(curve).map(function (k) { return curve[k]; }).sort(function (a, b) { return a.epoch - b.epoch; })
        .map(function (p) { return { x: p.epoch, y: p[state.metric], seq: p.seq }; });
      return { id: id, label: label(c), color: C.colorFor(c && c.index !== null ? c.index : id),
               selected: state.selected.indexOf(id) >= 0, points: pts };
    }).filter(function (s) { return s.points.length; });
    var maxEpoch = (state.search && state.search.epochs) || 1;
    C.lineChart($("chart"), series, { metric: state.metric, yLabel: METRIC_LABELS[state.metric], yScale: state.yScale, xMax: maxEpoch });
    $("chart-empty").hidden = series.length > 0;
    $("chart-legend").innerHTML = series.map(function (s) {
      return '<li data-candidate="' + s.id + '"' + (s.selected ? ' class="selected"' : "") + '><span class="swatch" style="background:' +
        s.color + '"></span><a href="' + candidateUrl(s.id) + '">' + escapeHtml(s.label) + "</a></li>";
    }).join("");
  }

  function drawBoard() {
    var lb = state.lb, q = lb.query;
    var rows = lb.rows.map(function (id) { return state.cands[id]; }).filter(Boolean);
    $("leaderboard").querySelector("tbody").innerHTML = rows.map(function (c, i) {
      var checked = state.selected.indexOf(c.id) >= 0 ? " checked" : "";
      var download = c.has_checkpoint ? '<a class="download" href="' + checkpointUrl(c.id) + '">checkpoint</a>' : "";
      var why = c.error || c.stop_reason || "";
      return '<tr data-candidate="' + c.id + '" data-state="' + c.state + '"' + (checked ? ' class="selected"' : "") + ">" +
        '<td><input type="checkbox" class="pick" data-candidate="' + c.id + '"' + checked + ' aria-label="draw ' + label(c) + '"></td>' +
        "<td>" + (lb.offset + i + 1) + '</td><td><a class="candidate-link" href="' + candidateUrl(c.id) + '">' + escapeHtml(label(c)) + "</a>" +
        (c.on_pareto_front ? ' <span class="front-mark" title="on the Pareto front">◆</span>' : "") + "</td>" +
        '<td><code class="arch">' + escapeHtml(c.genotype) + "</code></td>" +
        '<td class="params">' + (c.param_count === null || c.param_count === undefined ? "—" : c.param_count.toLocaleString()) + "</td>" +
        '<td class="flops">' + C.formatNumber(c.flops) + "</td>" +
        '<td class="latency">' + (c.latency_ms === null || c.latency_ms === undefined ? "—" : c.latency_ms.toFixed(2)) + "</td>" +
        '<td class="epochs">' + (c.epochs_done || 0) + "</td>" +
        '<td class="best">' + fmt(c.best_val_accuracy, 4) + "</td>" +
        '<td class="test">' + fmt(c.test_accuracy, 4) + "</td>" +
        '<td><span class="state state-' + c.state + '" title="' + escapeHtml(why) + '">' + c.state + "</span></td>" +
        "<td>" + download + "</td></tr>";
    }).join("");
    var isFiltered = filtered(q);
    $("leaderboard-empty").hidden = lb.total > 0 || isFiltered;
    $("leaderboard-nomatch").hidden = lb.total > 0 || !isFiltered;
    lb.pages = Math.max(1, Math.ceil(lb.total / lb.pageSize));
    $("lb-page").textContent = "page " + lb.page + " of " + Math.max(lb.pages, lb.page) + " · " +
      lb.total.toLocaleString() + (isFiltered ? " matching" : "") + " candidate" + (lb.total === 1 ? "" : "s");
    $("lb-prev").disabled = lb.page <= 1;
    $("lb-first").disabled = lb.page <= 1;
    $("lb-next").disabled = lb.page >= lb.pages;
    $("lb-last").disabled = lb.page >= lb.pages;
    document.querySelectorAll("#leaderboard th[data-sort]").forEach(function (th) {
      var key = th.dataset.sort, sort = q.sort.replace("-", "");
      th.classList.toggle("sorted", key === sort);
      th.dataset.direction = key === sort ? (q.sort.charAt(0) === "-" ? "desc" : "asc") : "";
    });
    var picked = state.selected.map(function (id) { return label(state.cands[id] || { id: id }); });
    $("selection").textContent = picked.length ? "Drawn on the chart as well: " + picked.join(", ") : "";
    $("clear-selection").hidden = !picked.length;
    var compare = $("compare-selected");
    var two = state.selected.length === 2 && state.selected.every(function (id) { return state.cands[id] && state.cands[id].index !== null; });
    compare.hidden = !two;
    if (two) compare.href = config.urls.diff + "?a=" + state.cands[state.selected[0]].index + "&b=" + state.cands[state.selected[1]].index;
  }

  // --- Pareto scatter --------------------------------------------------------------
  function loadScatter() {
    if (state.scatterLoading) return;
    state.scatterLoading = true;
    var x = $("pareto-x").value;
    fetch(config.urls.scatter + "?x=" + encodeURIComponent(x), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        var points = {};
        data.points.forEach(function (p) { points[p.id] = p; });
        state.scatter = { x: data.x, points: points, total: data.total, sampled: data.sampled, finished: data.finished };
        state.dirty.scatter = true;
      })
      .catch(function () { /* the card says nothing new; a reopen tries again */ })
      .then(function () { state.scatterLoading = false; scheduleDraw(); });
  }

  function drawScatter() {
    if (!state.scatter) return;
    var field = { params: "param_count", flops: "flops", latency: "latency_ms" }[$("pareto-x").value];
    var points = Object.keys(state.scatter.points).map(function (id) {
      var p = state.scatter.points[id], c = state.cands[id] || p;
      return { id: +id, x: c[field], y: c.best_val_accuracy, label: "#" + c.index };
    });
    var front = C.scatter($("pareto"), points, {
      xLabel: $("pareto-x").selectedOptions[0].textContent, yLabel: "best val. accuracy",
      onClick: function (p) { location.href = candidateUrl(p.id); },
    });
    var drawn = points.filter(function (p) { return p.x !== null && p.x !== undefined && p.x > 0; }).length;
    $("pareto-empty").hidden = drawn > 0;
    $("pareto-note").textContent = drawn ? front.length + " on the front of " + drawn + " drawn" +
      (state.scatter.sampled ? " (every front point and a sample of " + state.scatter.total.toLocaleString() + " finished)" : "") : "";
  }

  // --- the websocket ---------------------------------------------------------------
  function setConnection(text, lost) {
    var conn = $("connection");
    conn.textContent = text;
    conn.classList.toggle("lost", !!lost);
    root.dataset.connection = lost ? "lost" : text;
  }

  function connect() {
    if (state.deleted) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var params = queryParams(state.lb.query);
    params.set("after", state.seqFloor);
    state.haveSent = {};
    Object.keys(state.complete).forEach(function (id) { state.haveSent[id] = true; });
    params.set("have", Object.keys(state.haveSent).join(","));
    if (state.selected.length) params.set("selected", state.selected.join(","));
    params.set("top", state.topN);
    var socket = new WebSocket(scheme + location.host + root.dataset.wsPath + "?" + params.toString());
    state.socket = socket;
    socket.onopen = function () {
      state.retryMs = 500; setConnection("live");
      if (!root.dataset.wsOpenMs) root.dataset.wsOpenMs = Math.round(performance.now());
    };
    socket.onmessage = function (message) {
      if (!root.dataset.snapshotMs) root.dataset.snapshotMs = Math.round(performance.now());
      handle(JSON.parse(message.data));
    };
    socket.onclose = function (event) {
      if (state.deleted) return;
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

  // --- controls --------------------------------------------------------------------
  function syncFilterForm() {
    var q = state.lb.query, form = $("lb-filters");
    form.querySelectorAll("input[name=state]").forEach(function (box) { box.checked = q.state.indexOf(box.value) >= 0; });
    ["acc_min", "acc_max", "params_min", "params_max"].forEach(function (k) { form.elements[k].value = q[k] === null ? "" : q[k]; });
    form.elements.q.value = q.q;
    form.elements.uses.value = q.uses[0] || "";
    $("lb-sort").value = q.sort;
  }

  function wire() {
    $("lb-filters").addEventListener("submit", function (event) {
      event.preventDefault();
      var form = event.target;
      changeView(function (q) {
        q.state = Array.prototype.filter.call(form.querySelectorAll("input[name=state]"), function (b) { return b.checked; })
          .map(function (b) { return b.value; });
        ["acc_min", "acc_max", "params_min", "params_max"].forEach(function (k) {
          var v = form.elements[k].value; q[k] = v === "" || isNaN(Number(v)) ? null : Number(v);
        });
        q.q = form.elements.q.value.trim();
        q.uses = form.elements.uses.value ? [form.elements.uses.value] : [];
        q.page = 1;
      });
    });
    $("lb-clear").addEventListener("click", function () {
      changeView(function (q) { var d = defaultQuery(); Object.keys(d).forEach(function (k) { if (k !== "sort") q[k] = d[k]; }); });
    });
    $("lb-sort").addEventListener("change", function (event) {
      changeView(function (q) { q.sort = event.target.value; q.page = 1; });
    });
    document.querySelectorAll("#leaderboard th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        changeView(function (q) {
          var key = th.dataset.sort, current = q.sort.replace("-", "");
          var firstDesc = ["best", "final", "test", "epochs"].indexOf(key) >= 0;
          if (current === key) q.sort = q.sort.charAt(0) === "-" ? key : "-" + key;
          else q.sort = firstDesc ? "-" + key : key;
          q.page = 1;
        });
      });
    });
    var pager = { "lb-first": function () { return 1; }, "lb-prev": function (q) { return q.page - 1; },
                  "lb-next": function (q) { return q.page + 1; }, "lb-last": function () { return state.lb.pages; } };
    Object.keys(pager).forEach(function (id) {
      $(id).addEventListener("click", function () {
        changeView(function (q) { q.page = Math.max(1, Math.min(state.lb.pages, pager[id](q))); });
      });
    });
    $("leaderboard").addEventListener("change", function (event) {
      if (!event.target.classList.contains("pick")) return;
      var id = Number(event.target.dataset.candidate);
      if (event.target.checked && state.selected.indexOf(id) < 0) {
        if (state.selected.length >= config.max_selected) state.selected.shift();
        state.selected.push(id);
      } else if (!event.target.checked) {
        state.selected = state.selected.filter(function (s) { return s !== id; });
      }
      saveSelected();
      state.dirty.chart = state.dirty.board = true;
      ensureCurves();
      scheduleDraw();
    });
    $("clear-selection").addEventListener("click", function () {
      state.selected = []; saveSelected();
      state.dirty.chart = state.dirty.board = true; scheduleDraw();
    });
    $("curve-metric").addEventListener("change", function (e) { state.metric = e.target.value; state.dirty.chart = true; scheduleDraw(); });
    $("curve-scale").addEventListener("change", function (e) { state.yScale = e.target.value; state.dirty.chart = true; scheduleDraw(); });
    $("curve-top").addEventListener("change", function (e) {
      state.topN = Number(e.target.value);
      // The best N may include candidates the page never heard of: ask for them once.
      fetch(config.urls.leaderboard + "?sort=-best&page_size=" + state.topN, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (board) { board.rows.forEach(function (c) { upsert(c); }); })
        .catch(function () {})
        .then(function () { state.topDirty = true; state.dirty.chart = true; scheduleDraw(); });
    });
    $("pareto-card").addEventListener("toggle", function (e) {
      if (e.target.open && !state.scatter) loadScatter();
    });
    $("pareto-x").addEventListener("change", function () {
      // A sampled scatter kept the front of the cost it was asked for: ask again for this one.
      if (state.scatter && state.scatter.sampled) loadScatter();
      state.dirty.scatter = true; scheduleDraw();
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) { if (!confirm(form.dataset.confirm)) event.preventDefault(); });
    });
  }

  syncFilterForm();
  wire();
  connect();
})();
