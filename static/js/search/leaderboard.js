// The leaderboard: sorted, filtered and paged by the server (searches.selectors). The page
// never orders rows itself: values of the rows it shows change live as events arrive, and
// the order is asked again from the server over the open socket, at most every
// REFRESH_MS while events come in. A change of view by the user is one HTTP request.
import { $, escapeHtml, fmt, formatNumber, getJson } from "../lib/util.js";
import { label } from "./state.js";

const REFRESH_MS = 2000;

function defaultQuery() {
  return { sort: "-best", state: [], acc_min: null, acc_max: null, params_min: null, params_max: null,
           q: "", uses: [], page: 1 };
}
const NUMBERS = ["acc_min", "acc_max", "params_min", "params_max"];

export function queryFromUrl() {
  const params = new URLSearchParams(location.search), q = defaultQuery();
  if (params.get("sort")) q.sort = params.get("sort");
  q.state = params.getAll("state");
  for (const k of NUMBERS) {
    const v = params.get(k);
    if (v !== null && v !== "" && !isNaN(Number(v))) q[k] = Number(v);
  }
  q.q = params.get("q") || "";
  q.uses = params.getAll("uses");
  q.page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  return q;
}

export function queryParams(q) {
  const params = new URLSearchParams();
  if (q.sort && q.sort !== "-best") params.set("sort", q.sort);
  q.state.forEach((s) => params.append("state", s));
  for (const k of NUMBERS) if (q[k] !== null) params.set(k, q[k]);
  if (q.q) params.set("q", q.q);
  q.uses.forEach((u) => params.append("uses", u));
  if (q.page > 1) params.set("page", q.page);
  return params;
}

export class Leaderboard {
  constructor(page) {
    this.page = page;             // the search page: its state, socket and redraw
    this.query = queryFromUrl();
    this.rows = []; this.total = 0; this.pageNo = 1; this.pages = 1; this.offset = 0;
    this.pageSize = page.config.page_size; this.ready = false; this.filtered = false;
    this.loading = false; this.asked = 0; this.timer = null; this.dirty = true;
    this.expanded = new Set();  // rows whose whole architecture the user opened
  }

  view() { return queryParams(this.query).toString(); }

  set(board) {
    board.rows.forEach((c) => this.page.upsert(c));
    this.rows = board.rows.map((c) => c.id);
    Object.assign(this, { total: board.total, pageNo: board.page, pages: board.pages, offset: board.offset,
                          pageSize: board.page_size, ready: true, dirty: true });
    this.query.page = board.page;
    const q = board.query || {};
    this.filtered = Boolean((q.state || []).length || q.q || (q.uses || []).length ||
                            NUMBERS.some((k) => q[k] !== null && q[k] !== undefined));
  }

  // A candidate changed: redraw its row now if shown, and ask the server for the order.
  // `now`: ask at once (the search ended: nothing else will come to trigger it).
  changed(id, now = false) {
    if (this.rows.indexOf(id) >= 0) this.dirty = true;
    if (now && this.ready) { clearTimeout(this.timer); this.timer = null; this.ask(); return; }
    if (!this.ready || this.timer) return;
    const wait = Math.max(0, this.asked + REFRESH_MS - Date.now());
    this.timer = setTimeout(() => { this.timer = null; this.ask(); }, wait);
  }

  ask() {
    this.asked = Date.now();
    const view = this.view();
    const leaderboard = Object.assign({}, this.query, { uses: this.query.uses });
    if (!this.page.send({ type: "leaderboard", view, leaderboard })) return;
    this.page.root.dataset.boardAsks = Number(this.page.root.dataset.boardAsks || 0) + 1;
  }

  // The server's answer to ask(): kept only if the user did not change the view meanwhile.
  answer(event) {
    if (event.view !== this.view() || this.loading) return;
    this.set(event.board);
  }

  async fetch() {
    this.loading = true;
    const root = this.page.root;
    root.dataset.boardLoading = "1";
    $("leaderboard").classList.add("loading");
    try {
      this.set(await getJson(this.page.config.urls.leaderboard + "?" + this.view()));
    } catch (e) { /* the next event or click asks again */ }
    this.loading = false;
    root.dataset.boardLoading = "";
    $("leaderboard").classList.remove("loading");
    root.dataset.boardFetches = Number(root.dataset.boardFetches || 0) + 1;
    this.page.schedule();
  }

  change(update) {
    update(this.query);
    const params = this.view();
    history.replaceState(null, "", location.pathname + (params ? "?" + params : ""));
    this.syncForm();
    this.fetch();
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const state = this.page.state, urls = this.page.urls;
    const rows = this.rows.map((id) => state.cands[id]).filter(Boolean);
    $("leaderboard").querySelector("tbody").innerHTML = rows.map((c, i) => {
      const checked = state.selected.indexOf(c.id) >= 0 ? " checked" : "";
      const download = c.has_checkpoint ? `<a class="download" href="${urls.checkpoint(c.id)}">checkpoint</a>` : "";
      const why = c.error || c.stop_reason || "";
      const genotype = escapeHtml(c.genotype), open = this.expanded.has(c.id);
      return `<tr data-candidate="${c.id}" data-state="${c.state}"${checked ? ' class="selected"' : ""}>` +
        `<td><input type="checkbox" class="pick" data-candidate="${c.id}"${checked} aria-label="draw ${label(c)}"></td>` +
        `<td>${this.offset + i + 1}</td><td><a class="candidate-link" href="${urls.candidate(c.id)}">${escapeHtml(label(c))}</a>` +
        (c.on_pareto_front ? ' <span class="front-mark" title="on the Pareto front">◆</span>' : "") + "</td>" +
        `<td class="arch-cell${open ? " expanded" : ""}"><button type="button" class="arch-toggle" title="${genotype}" aria-expanded="${open}"` +
        ` aria-label="architecture of ${escapeHtml(label(c))}: show all"><code class="arch">${genotype}</code></button></td>` +
        `<td class="params">${c.param_count === null || c.param_count === undefined ? "—" : c.param_count.toLocaleString()}</td>` +
        `<td class="flops">${formatNumber(c.flops)}</td>` +
        `<td class="latency">${fmt(c.latency_ms, 2)}</td>` +
        `<td class="epochs">${c.epochs_done || 0}</td>` +
        `<td class="best">${fmt(c.best_val_accuracy, 4)}</td>` +
        `<td class="test">${fmt(c.test_accuracy, 4)}</td>` +
        `<td><span class="state state-${c.state}" title="${escapeHtml(why)}">${c.state}</span></td>` +
        `<td>${download}</td></tr>`;
    }).join("");
    $("leaderboard-empty").hidden = this.total > 0 || this.filtered;
    $("leaderboard-nomatch").hidden = this.total > 0 || !this.filtered;
    $("lb-page").textContent = `page ${this.pageNo} of ${Math.max(this.pages, this.pageNo)} · ` +
      this.total.toLocaleString() + (this.filtered ? " matching" : "") + " candidate" + (this.total === 1 ? "" : "s");
    $("lb-prev").disabled = $("lb-first").disabled = this.pageNo <= 1;
    $("lb-next").disabled = $("lb-last").disabled = this.pageNo >= this.pages;
    const sort = this.query.sort.replace("-", "");
    document.querySelectorAll("#leaderboard th[data-sort]").forEach((th) => {
      th.classList.toggle("sorted", th.dataset.sort === sort);
      th.dataset.direction = th.dataset.sort === sort ? (this.query.sort.charAt(0) === "-" ? "desc" : "asc") : "";
    });
    const picked = state.selected.map((id) => label(state.cands[id] || { id }));
    $("selection").textContent = picked.length ? "Drawn on the chart as well: " + picked.join(", ") : "";
    $("clear-selection").hidden = !picked.length;
    const compare = $("compare-selected");
    const two = state.selected.length === 2 && state.selected.every((id) => state.cands[id] && state.cands[id].index !== null);
    compare.hidden = !two;
    if (two) compare.href = `${this.page.config.urls.diff}?a=${state.cands[state.selected[0]].index}&b=${state.cands[state.selected[1]].index}`;
  }

  syncForm() {
    const q = this.query, form = $("lb-filters");
    form.querySelectorAll("input[name=state]").forEach((box) => { box.checked = q.state.indexOf(box.value) >= 0; });
    for (const k of NUMBERS) form.elements[k].value = q[k] === null ? "" : q[k];
    form.elements.q.value = q.q;
    form.elements.uses.value = q.uses[0] || "";
    $("lb-sort").value = q.sort;
  }

  wire() {
    $("lb-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      this.change((q) => {
        q.state = [...form.querySelectorAll("input[name=state]")].filter((b) => b.checked).map((b) => b.value);
        for (const k of NUMBERS) { const v = form.elements[k].value; q[k] = v === "" || isNaN(Number(v)) ? null : Number(v); }
        q.q = form.elements.q.value.trim();
        q.uses = form.elements.uses.value ? [form.elements.uses.value] : [];
        q.page = 1;
      });
    });
    $("lb-nomatch-clear").addEventListener("click", () => $("lb-clear").click());
    $("lb-clear").addEventListener("click", () => {
      this.change((q) => { const d = defaultQuery(); for (const k of Object.keys(d)) if (k !== "sort") q[k] = d[k]; });
    });
    $("lb-sort").addEventListener("change", (event) => this.change((q) => { q.sort = event.target.value; q.page = 1; }));
    document.querySelectorAll("#leaderboard th[data-sort]").forEach((th) => th.addEventListener("click", () => {
      this.change((q) => {
        const key = th.dataset.sort, current = q.sort.replace("-", "");
        const firstDesc = ["best", "final", "test", "epochs"].indexOf(key) >= 0;
        if (current === key) q.sort = q.sort.charAt(0) === "-" ? key : "-" + key;
        else q.sort = firstDesc ? "-" + key : key;
        q.page = 1;
      });
    }));
    const pager = { "lb-first": () => 1, "lb-prev": (q) => q.page - 1, "lb-next": (q) => q.page + 1, "lb-last": () => this.pages };
    for (const [id, to] of Object.entries(pager)) {
      $(id).addEventListener("click", () => this.change((q) => { q.page = Math.max(1, Math.min(this.pages, to(q))); }));
    }
    // The architecture column shows the start of each architecture; a click shows it all.
    $("leaderboard").addEventListener("click", (event) => {
      const toggle = event.target.closest && event.target.closest(".arch-toggle");
      if (!toggle) return;
      const id = Number(toggle.closest("tr").dataset.candidate);
      if (this.expanded.has(id)) this.expanded.delete(id); else this.expanded.add(id);
      this.dirty = true;
      this.page.schedule();
    });
  }
}
