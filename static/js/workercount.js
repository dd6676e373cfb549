// "2 at once asked, 1 worker online": every [data-worker-count] element on the page, kept live
// by the workers websocket (the server sends the worker table when it changes; a worker whose
// heartbeat is older than its timeout is not online). Also tells the form (a "workers" event).
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

let retryMs = 1000;
function connect() {
  const first = boxes()[0];
  if (!first) return;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + first.dataset.wsPath);
  socket.onopen = () => { retryMs = 1000; };
  socket.onmessage = (m) => {
    const event = JSON.parse(m.data);
    if (event.type === "workers") render(online(event.workers));
  };
  socket.onclose = () => { setTimeout(connect, retryMs); retryMs = Math.min(retryMs * 2, 30000); };
}

if (!window.__naswebWorkerCount) {
  window.__naswebWorkerCount = true;
  connect();
}
