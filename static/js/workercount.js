// "2 at once asked, 1 worker online": every [data-worker-count] element on the page, kept live
// by the workers websocket (the server sends the worker table when it changes; a worker whose
// heartbeat is older than its timeout is not online). Also tells the form (a "workers" event).
import { openSocket } from "./lib/socket.js";

const boxes = () => [...document.querySelectorAll("[data-worker-count]")];

function online(rows) {
  return rows.filter((w) => !w.lost && w.seconds_since_heartbeat <= w.timeout_seconds).length;
}

function text(asked, n) {
  const head = asked ? `${asked} at once asked, ` : "";
  const tail = !asked || asked <= n ? "" : (n ? ` — only ${n} can train at once; ` : " — nothing trains until one starts; ");
  return { head, n, tail };
}

export function render(n) {
  for (const box of boxes()) {
    const asked = Number(box.dataset.asked || 0);
    const t = text(asked, n);
    box.dataset.online = String(n);
    box.replaceChildren();
    box.append(t.head);
    const b = document.createElement("b");
    b.className = "online";
    b.textContent = String(n);
    box.append(b, ` worker${n === 1 ? "" : "s"} online`);
    if (t.tail) {
      const a = document.createElement("a");
      a.href = "/workers/";
      a.textContent = "start more workers";
      box.append(t.tail, a);
    }
  }
  document.dispatchEvent(new CustomEvent("nasweb:workers", { detail: { online: n } }));
}

export function setAsked(asked) {
  for (const box of boxes()) box.dataset.asked = String(asked || "");
  render(Number(boxes()[0]?.dataset.online || 0));
}

function connect() {
  const first = boxes()[0];
  if (!first) return;
  openSocket({
    path: first.dataset.wsPath, firstRetryMs: 1000, maxRetryMs: 30000,
    onMessage: (event) => { if (event.type === "workers") render(online(event.workers)); },
  });
}

if (!window.__naswebWorkerCount) {
  window.__naswebWorkerCount = true;
  connect();
}
