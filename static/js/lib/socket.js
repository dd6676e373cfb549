// The one websocket helper of every page: connects, reconnects with back-off, tells the
// page how the connection stands, and hands each message to the page. Every message is
// also dispatched on `document` as a "nasweb:message" event, so a panel (the model
// bundle's) can listen to the page's socket instead of opening its own or polling.
//
// Lost events are recovered on the server: the consumer sends a gap-free stream in
// sequence order (it fills any hole from Postgres), so a page only remembers the last
// sequence number it saw and sends it as `after` when it reconnects.
const FINAL_CODES = { 4401: true, 4404: true };

export function openSocket({ path, params = () => new URLSearchParams(), onMessage, onStatus = () => {},
                             onOpen = () => {}, firstRetryMs = 500, maxRetryMs = 10000 }) {
  let retryMs = firstRetryMs, socket = null, stopped = false, timer = null;

  function connect() {
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const query = params().toString();
    socket = new WebSocket(scheme + location.host + path + (query ? "?" + query : ""));
    socket.onopen = () => { retryMs = firstRetryMs; onStatus("live", false); onOpen(); };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      onMessage(event);
      document.dispatchEvent(new CustomEvent("nasweb:message", { detail: event }));
    };
    socket.onclose = (event) => {
      if (stopped) return;
      if (FINAL_CODES[event.code]) { onStatus("This page is not available to you.", true); return; }
      const wait = retryMs;
      retryMs = Math.min(retryMs * 2, maxRetryMs);
      onStatus("connection lost — reconnecting in " + Math.round(wait / 100) / 10 + " s…", true);
      timer = setTimeout(connect, wait);
    };
  }

  connect();
  return {
    send(data) {
      if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(data)); return true; }
      return false;
    },
    close() { stopped = true; clearTimeout(timer); if (socket) socket.close(1000); },
  };
}

// Redraw at the next animation frame, however many events arrived before it.
export function frameScheduler(draw) {
  let frame = 0;
  return function schedule() {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); });
  };
}

// After a redraw that shows new epochs: a mark and a record a benchmark reads
// (commit -> drawn, the commit time travelling in the event).
export function markDrawn(seq) {
  performance.mark("nasweb-drawn", { detail: { seq } });
  window.nasweb = window.nasweb || {};
  window.nasweb.lastDrawn = { seq, drawnAt: performance.timeOrigin + performance.now() };
}
