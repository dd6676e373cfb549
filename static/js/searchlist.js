// Search list: filter (name, state, data set) and sort by any column, kept live by the
// /ws/searches/ websocket (the server sends the user's rows whenever they change).
import { openSocket } from "./lib/socket.js";

const box = document.getElementById("search-list-box");
let rows = JSON.parse(document.getElementById("search-list-data").textContent);
let sortKey = "created_at", descending = true;

function duration(r) {
  if (!r.started_at) return null;
  const end = r.finished_at ? Date.parse(r.finished_at) : Date.now();
  return (end - Date.parse(r.started_at)) / 1000;
}

function showDuration(seconds) {
  if (seconds === null) return "—";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function value(r, key) {
  if (key === "duration") return duration(r);
  if (key === "done") return r.total ? r.done / r.total : 0;
  return r[key];
}

function compare(a, b) {
  const x = value(a, sortKey), y = value(b, sortKey);
  if (x === y) return b.id - a.id;
  if (x === null || x === undefined) return 1;   // empty values last, either way
  if (y === null || y === undefined) return -1;
  const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
  return descending ? -order : order;
}

function cell(text, child) {
  const td = document.createElement("td");
  if (child) td.append(child); else td.textContent = text;
  return td;
}

function rowOf(r) {
  const tr = document.createElement("tr");
  tr.dataset.search = r.id;
  const link = document.createElement("a");
  link.href = r.url;
  link.textContent = r.name;
  const chip = document.createElement("span");
  chip.className = `state state-${r.state}`;
  chip.textContent = r.state;
  tr.append(cell("", link), cell(r.dataset), cell(r.space), cell(r.strategy),
    cell(r.best_accuracy === null ? "—" : r.best_accuracy.toFixed(4)), cell(`${r.done} / ${r.total}`),
    cell(showDuration(duration(r))), cell("", chip), cell(r.created_at.slice(0, 16).replace("T", " ")));
  return tr;
}

function matches(r, filters) {
  return (!filters.q || r.name.toLowerCase().includes(filters.q.toLowerCase()))
    && (!filters.state || r.state === filters.state) && (!filters.dataset || r.dataset === filters.dataset);
}

function render() {
  const form = document.getElementById("search-list-filters");
  const filters = form ? Object.fromEntries(new FormData(form)) : {};
  const shown = rows.filter((r) => matches(r, filters)).sort(compare);
  document.querySelector("#search-list tbody").replaceChildren(...shown.map(rowOf));
  document.getElementById("search-list").hidden = rows.length === 0;
  document.getElementById("search-list-empty").hidden = rows.length > 0;
  document.getElementById("search-list-nomatch").hidden = !rows.length || shown.length > 0;
  const count = document.getElementById("search-list-count");
  if (count) count.textContent = `${shown.length} of ${rows.length} searches`;
  for (const th of document.querySelectorAll("#search-list th")) {
    const key = th.querySelector("button.sort")?.dataset.key;
    th.setAttribute("aria-sort", key === sortKey ? (descending ? "descending" : "ascending") : "none");
  }
}

for (const button of document.querySelectorAll("#search-list button.sort")) {
  button.addEventListener("click", () => {
    if (sortKey === button.dataset.key) descending = !descending;
    else { sortKey = button.dataset.key; descending = ["best_accuracy", "done", "created_at", "duration"].includes(sortKey); }
    render();
  });
}
document.getElementById("search-list-filters")?.addEventListener("input", render);
document.getElementById("search-list-filters")?.addEventListener("submit", (e) => { e.preventDefault(); render(); });

function connect() {
  openSocket({
    path: box.dataset.wsPath, firstRetryMs: 1000, maxRetryMs: 30000,
    onMessage: (event) => { if (event.type === "searches") { rows = event.searches; render(); } },
    onStatus: (text, lost) => {
      box.dataset.connection = lost ? "lost" : "live";
      document.getElementById("connection").textContent = lost ? "live updates paused — reconnecting" : text;
    },
  });
}

render();
connect();
