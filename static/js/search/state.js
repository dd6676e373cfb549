// What the search page knows, shared by its modules.
export const ENDED = ["finished", "failed", "pruned", "cancelled"];
export const ACTIVE = ["queued", "running"];
export const SEARCH_ENDED = ["finished", "failed", "cancelled"];

export function isEnded(c) { return Boolean(c) && ENDED.indexOf(c.state) >= 0; }

export function label(c) {
  return c && c.index !== null && c.index !== undefined ? "#" + c.index : "candidate " + (c ? c.id : "?");
}

export function newState(config) {
  return {
    search: null,
    cands: {},        // id -> candidate data, for every candidate the page has heard of
    lastSeq: 0,       // the stream from the server is gap-free: the last number seen is enough
    drawnSeq: 0,      // the last sequence number a redraw showed
    deleted: false,
    selected: [], draws: 0, events: 0,
    topN: config.top,
  };
}
