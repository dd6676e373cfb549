// Workers page: the table the server rendered, kept current by the workers websocket, and
// each row's heartbeat age counted here every second, so a worker that goes silent turns
// "lost" on time even between updates.
import { openSocket } from "./lib/socket.js";
import { escapeHtml, readConfig } from "./lib/util.js";

function start(box) {
  const timeout = Number(box.dataset.timeout) || 60;
  let rows = readConfig("workers-data");
  let loadedAt = Date.now();

  // Ages count from the server's measure at load time, so a skewed browser clock does not matter.
  const age = (w) => w.seconds_since_heartbeat + (Date.now() - loadedAt) / 1000;

  function render() {
    document.querySelector("#worker-table tbody").innerHTML = rows.map((w) => {
      const lost = age(w) > timeout;
      const training = w.candidate
        ? `<a href="${escapeHtml(w.candidate.url)}">#${w.candidate.index} of ${escapeHtml(w.candidate.search_name)}</a>`
        : (w.busy ? "another user's search" : "idle");
      return `<tr data-worker="${escapeHtml(w.name)}" class="${lost ? "lost" : ""}">` +
        `<td>${escapeHtml(w.name)}</td><td>${escapeHtml(w.host)}</td><td>${escapeHtml(w.device || "—")}</td>` +
        `<td class="status"><span class="state ${lost ? "state-failed" : "state-finished"}">${lost ? "lost" : "live"}</span></td>` +
        `<td class="candidate">${training}</td>` +
        `<td class="heartbeat">${Math.round(age(w))} s ago</td>` +
        `<td>${w.samples_per_second === null ? "—" : Math.round(w.samples_per_second) + " samples/s"}</td>` +
        `<td>${w.epochs_done}</td></tr>`;
    }).join("");
    document.getElementById("worker-table").hidden = rows.length === 0;
    document.getElementById("workers-empty").hidden = rows.length > 0;
  }

  render();
  setInterval(render, 1000);  // ages only: no request
  openSocket({
    path: box.dataset.wsPath, firstRetryMs: 1000, maxRetryMs: 30000,
    onMessage: (event) => { if (event.type === "workers") { rows = event.workers; loadedAt = Date.now(); render(); } },
    onStatus: (text, lost) => {
      box.dataset.connection = lost ? "lost" : "live";
      document.getElementById("connection").textContent =
        lost ? "live updates paused — reconnecting; heartbeat ages still count here" : text;
    },
  });
}

const box = document.getElementById("workers");
if (box) start(box);
