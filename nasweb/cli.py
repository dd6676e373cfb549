"""NASWeb from the terminal, through the REST API with a personal token.

    export NASWEB_URL=http://127.0.0.1:8000 NASWEB_TOKEN=nas_...   # Settings → API tokens
    nasweb create search.yaml --follow   # start a search, watch it live
    nasweb follow 12                     # progress bar + leaderboard until it ends
    nasweb download 12 -o best.zip       # build (if needed) and fetch the best bundle
    nasweb list | pause 12 | resume 12 | cancel 12
    nasweb export 12 candidates csv -o candidates.csv

(`pip install /path/to/nasweb` installs the `nasweb` command, standard library only;
`python -m nasweb.cli` does the same from a checkout.) On a terminal the screen is
redrawn in place; piped or redirected, one plain line is appended per change.

Following uses the search's websocket (the ``websockets`` package) and falls
back to asking the API every 2 s when it cannot connect (or with ``--poll``).
Exit status: 0 on success (a followed search that finished), 1 when the
search failed or was cancelled or the server refused, 2 for bad input.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ENDED = ("finished", "failed", "cancelled", "deleted")
ACTIVE = ("queued", "running")
CANDIDATE_ENDED = ("finished", "failed", "pruned", "cancelled")
POLL_SECONDS = 2.0
BAR_WIDTH = 30
LEADERBOARD_ROWS = 10


class CliError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class Api:
    """A tiny JSON client over urllib (nothing to install)."""

    def __init__(self, url: str, token: str, timeout: float = 30.0):
        if not token:
            raise CliError("No API token: pass --token or set NASWEB_TOKEN (create one under Settings → API tokens).", 2)
        self.base = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return urllib.parse.urljoin(self.base, "api/" + path.lstrip("/"))

    def _open(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url(path), data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {})})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - the user's server
        except urllib.error.HTTPError as exc:
            raise CliError(_http_error_text(exc), 2 if exc.code == 400 else 1) from None
        except urllib.error.URLError as exc:
            raise CliError(f"Cannot reach {self.base}: {exc.reason}") from None

    def call(self, method: str, path: str, body=None):
        with self._open(method, path, body) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None)

    def get(self, path: str):
        return self.call("GET", path)[1]

    def post(self, path: str, body=None):
        return self.call("POST", path, body if body is not None else {})

    def download(self, path: str, target: Path) -> tuple[Path, str, dict]:
        """Stream a file to ``target`` (a directory: the server's file name) through a temporary
        name; returns (path, sha256, headers)."""
        with self._open("GET", path) as response:
            if target.is_dir():
                target = target / _filename(response.headers.get("Content-Disposition", ""), "download.bin")
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        handle.write(chunk)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return target, digest.hexdigest(), dict(response.headers)


def _filename(disposition: str, default: str) -> str:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "filename" and value:
            return Path(value.strip('"')).name or default
    return default


def _http_error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"null")
    except ValueError:
        body = None
    if isinstance(body, dict) and set(body) == {"detail"}:
        return f"{exc.code}: {body['detail']}"
    if isinstance(body, dict):
        lines = [f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                 for field, msgs in body.items()]
        return f"{exc.code}: the server refused it:\n  " + "\n  ".join(lines)
    return f"{exc.code}: {exc.reason}"


# --- rendering -----------------------------------------------------------------------

def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def progress_line(search: dict) -> str:
    counts = search.get("counts") or {}
    total = max(1, int(search.get("max_candidates") or 1))
    done = sum(int(counts.get(s, 0)) for s in CANDIDATE_ENDED)
    running = int(counts.get("running", 0))
    filled = min(BAR_WIDTH, round(BAR_WIDTH * done / total))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (f"[{bar}] {done}/{total} candidates · {running} running · "
            f"{search.get('state', '?')}")


def leaderboard_lines(candidates: list[dict], rows: int = LEADERBOARD_ROWS) -> list[str]:
    ranked = sorted((c for c in candidates if c.get("best_val_accuracy") is not None),
                    key=lambda c: (-c["best_val_accuracy"], c.get("index", 0)))[:rows]
    if not ranked:
        return ["  (no candidate has finished an epoch yet)"]
    lines = [f"  {'#':>3} {'cand':>5} {'state':<9} {'epochs':>6} {'best val':>9} {'test':>7} {'params':>9}  architecture"]
    for rank, c in enumerate(ranked, start=1):
        genotype = (c.get("genotype") or "")[:60]
        lines.append(f"  {rank:>3} {c.get('index', '?'):>5} {c.get('state', ''):<9} {c.get('epochs_done', 0):>6} "
                     f"{_fmt(c.get('best_val_accuracy')):>9} {_fmt(c.get('test_accuracy'), 3):>7} "
                     f"{_fmt(c.get('param_count')):>9}  {genotype}")
    return lines


class Screen:
    """Redraws in place on a terminal; elsewhere (a pipe, a file, CI logs) appends one plain
    progress line when it changed, and the leaderboard once, at the end."""

    def __init__(self, out):
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last = None

    def show(self, search: dict, candidates: list[dict], force: bool = False):
        if not self.tty and not force:
            text = f"{time.strftime('%H:%M:%S')} {progress_line(search)}{_best_text(candidates)}"
            if text.split(" ", 1)[1] != (self.last or " ").split(" ", 1)[1]:
                self.last = text
                self.out.write(text + "\n")
                self.out.flush()
            return
        text = "\n".join([f"Search {search.get('id')}: {search.get('name', '')}", progress_line(search)]
                         + leaderboard_lines(candidates))
        if text == self.last and not force:
            return
        self.last = text
        if self.tty:
            self.out.write("\x1b[H\x1b[2J")
        self.out.write(text + "\n" + ("" if self.tty else "\n"))
        self.out.flush()


def _best_text(candidates: list[dict]) -> str:
    scored = [c for c in candidates if c.get("best_val_accuracy") is not None]
    if not scored:
        return ""
    best = max(scored, key=lambda c: (c["best_val_accuracy"], -c.get("index", 0)))
    return f" · best {_fmt(best['best_val_accuracy'])} (#{best.get('index', '?')})"


def apply_candidate(search: dict, candidates: dict[int, dict], c: dict) -> dict:
    """Take a candidate event in: the candidate's row, and the search's counts moved from its
    old state to its new one (the server sends counts only with search events, so without
    this a candidate that starts after the snapshot read "0 running")."""
    old = (candidates.get(c["id"]) or {}).get("state")
    new = c.get("state")
    candidates[c["id"]] = dict(candidates.get(c["id"], {}), **c)
    if not new or new == old:
        return search
    counts = dict(search.get("counts") or {})
    source = old or ("queued" if new == "running" or not counts.get("running") else "running")
    if counts.get(source, 0) > 0:
        counts[source] -= 1
    counts[new] = counts.get(new, 0) + 1
    return dict(search, counts=counts)


def apply_message(search: dict, candidates: dict[int, dict], message: dict) -> dict:
    """One websocket message into the follower's view of the search; returns the search."""
    kind = message.get("type")
    if kind == "snapshot":
        search = dict(search, **message.get("search", {}))
        rows = list(message.get("candidates", [])) + list((message.get("leaderboard") or {}).get("rows", []))
        for c in rows:
            candidates[c["id"]] = dict(candidates.get(c["id"], {}), **c)
    elif kind == "search":
        search = dict(search, **message.get("search", {}))
    elif kind == "candidate":
        search = apply_candidate(search, candidates, message["candidate"])
    elif kind == "epoch" and message.get("candidate") in candidates:
        c = candidates[message["candidate"]]
        c["epochs_done"] = max(c.get("epochs_done") or 0, message.get("epoch", 0))
        acc = message.get("val_accuracy")
        if acc is not None and (c.get("best_val_accuracy") is None or acc > c["best_val_accuracy"]):
            c["best_val_accuracy"] = acc
    return search


# --- following a search ------------------------------------------------------------------

def _exit_code(search: dict) -> int:
    return 0 if search.get("state") == "finished" else 1


def follow_poll(api: Api, search_id: int, screen: Screen, interval: float = POLL_SECONDS,
                deadline: float | None = None) -> dict:
    while True:
        search = api.get(f"searches/{search_id}/")
        board = api.get(f"searches/{search_id}/candidates/?sort=-best&page_size={LEADERBOARD_ROWS}")
        screen.show(search, board.get("results", []))
        if search.get("state") in ENDED:
            return search
        if deadline is not None and time.monotonic() > deadline:
            raise CliError("Stopped following: the time limit passed (the search goes on).")
        time.sleep(interval)


def _ws_url(api: Api, search_id: int) -> str:
    parts = urllib.parse.urlsplit(api.base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    # Every epoch the server has is already summed up in the candidates: ask for none of them.
    return f"{scheme}://{parts.netloc}{parts.path}ws/searches/{search_id}/?after={2**62}&top=0"


def follow_websocket(api: Api, search_id: int, screen: Screen, deadline: float | None = None) -> dict:
    from websockets.sync.client import connect  # optional: the caller falls back to polling

    search = api.get(f"searches/{search_id}/")
    candidates: dict[int, dict] = {}
    parts = urllib.parse.urlsplit(api.base)
    with connect(_ws_url(api, search_id), origin=f"{parts.scheme}://{parts.netloc}",
                 additional_headers={"Authorization": f"Bearer {api.token}"}, open_timeout=10) as ws:
        while True:
            try:
                message = json.loads(ws.recv(timeout=1.0))
            except TimeoutError:
                message = None
            if message is not None:
                search = apply_message(search, candidates, message)
            screen.show(search, list(candidates.values()))
            if search.get("state") in ENDED:
                return search
            if deadline is not None and time.monotonic() > deadline:
                raise CliError("Stopped following: the time limit passed (the search goes on).")


def follow(api: Api, search_id: int, *, poll: bool = False, out=None, timeout: float | None = None) -> int:
    out = out or sys.stdout
    screen = Screen(out)
    deadline = time.monotonic() + timeout if timeout else None
    search = None
    if not poll:
        try:
            search = follow_websocket(api, search_id, screen, deadline)
        except CliError:
            raise
        except ImportError:
            print("(the websockets package is not installed: asking the API every 2 s)", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - any websocket trouble: carry on by polling
            print(f"(live connection failed: {exc}; asking the API every 2 s)", file=sys.stderr)
    if search is None:
        search = follow_poll(api, search_id, screen, deadline=deadline)
    board = api.get(f"searches/{search_id}/candidates/?sort=-best&page_size={LEADERBOARD_ROWS}")
    screen.show(search, board.get("results", []), force=True)
    state = search.get("state")
    print(f"Search {search_id} {state}." + (f" {search.get('error')}" if search.get("error") else ""), file=out)
    return _exit_code(search)


# --- commands ------------------------------------------------------------------------------

def load_settings(path: str) -> dict:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CliError(f"{path} is not valid JSON: {exc}", 2) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{path} is not valid YAML: {exc}", 2) from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a mapping of search settings (name, dataset, space, ...).", 2)
    return data


def cmd_list(api: Api, args, out) -> int:
    page = api.get("searches/?page_size=100")
    for s in page.get("results", []):
        best = s.get("best_accuracy")
        print(f"{s['id']:>6}  {s['state']:<9} {s.get('done', 0):>5}/{s['max_candidates']:<5} "
              f"best {_fmt(best)}  {s['name']}", file=out)
    if not page.get("results"):
        print("No searches yet.", file=out)
    return 0


def cmd_create(api: Api, args, out) -> int:
    settings = load_settings(args.file)
    _, search = api.post("searches/", settings)
    print(f"Created search {search['id']}: {search['name']} — {search['url']}", file=out)
    if args.follow:
        return follow(api, search["id"], poll=args.poll, out=out, timeout=args.timeout)
    return 0


def cmd_follow(api: Api, args, out) -> int:
    return follow(api, args.search, poll=args.poll, out=out, timeout=args.timeout)


def _action(name):
    def run(api: Api, args, out) -> int:
        _, search = api.post(f"searches/{args.search}/{name}/")
        print(f"Search {search['id']} is {search['state']}.", file=out)
        return 0
    return run


def cmd_download(api: Api, args, out) -> int:
    base = (f"searches/{args.search}/candidates/{args.candidate}/bundle/" if args.candidate
            else f"searches/{args.search}/best/bundle/")
    _, bundle = api.post(base, {"rebuild": bool(args.rebuild)})
    deadline = time.monotonic() + args.timeout
    shown = None
    while bundle["state"] in ("queued", "running"):
        line = f"building [{'#' * (bundle['progress'] * 20 // 100):<20}] {bundle['progress']:>3}% {bundle['message']}"
        if line != shown:
            print(line, file=out, flush=True)
            shown = line
        if time.monotonic() > deadline:
            raise CliError("The bundle is still building; run the same command again later.")
        time.sleep(1.0)
        bundle = api.get(base)
    if bundle["state"] != "ready":
        raise CliError(f"The bundle could not be built: {(bundle.get('error') or '').strip().splitlines()[-1:]}")
    target = Path(args.output) if args.output else Path.cwd()
    path, digest, _ = api.download(bundle["download_url"], target)
    if digest != bundle["sha256"]:
        path.unlink(missing_ok=True)
        raise CliError("The downloaded bundle does not match its checksum; try again.")
    print(f"Saved {path} ({bundle['size']:,} bytes, sha256 {digest[:16]}…)", file=out)
    print(f"  model.py standalone: {'yes' if bundle['standalone_ok'] else 'no — ' + bundle['standalone_error']}",
          file=out)
    print(f"  ONNX: {'checked with onnxruntime' if bundle['onnx_ok'] else 'not included — ' + bundle['onnx_error']}",
          file=out)
    if bundle.get("int8_size"):
        print(f"  int8: {bundle['int8_size']:,} bytes (float {bundle['float_size']:,}); test accuracy "
              f"{_fmt(bundle['int8_accuracy'])} (float {_fmt(bundle['float_accuracy'])})", file=out)
    return 0


def cmd_export(api: Api, args, out) -> int:
    target = Path(args.output) if args.output else Path.cwd()
    path, _, _ = api.download(f"searches/{args.search}/export/{args.kind}.{args.format}", target)
    print(f"Saved {path}", file=out)
    return 0


def parser() -> argparse.ArgumentParser:
    intro, examples = __doc__.split("\n\n", 2)[:2]
    p = argparse.ArgumentParser(prog="nasweb", description=intro, epilog="examples:\n" + examples,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("NASWEB_URL", "http://127.0.0.1:8000"),
                   help="the NASWeb site (default $NASWEB_URL or http://127.0.0.1:8000)")
    p.add_argument("--token", default=os.environ.get("NASWEB_TOKEN", ""),
                   help="a personal API token (default $NASWEB_TOKEN)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="your searches").set_defaults(run=cmd_list)
    c = sub.add_parser("create", help="start a search from a YAML or JSON file ('-' reads stdin)")
    c.add_argument("file")
    c.add_argument("--follow", action="store_true", help="then follow it until it ends")
    f = sub.add_parser("follow", help="progress bar and leaderboard, live, until the search ends")
    f.add_argument("search", type=int)
    for q in (c, f):
        q.add_argument("--poll", action="store_true", help="ask the API every 2 s instead of the websocket")
        q.add_argument("--timeout", type=float, default=None, help="stop following after this many seconds")
    c.set_defaults(run=cmd_create)
    f.set_defaults(run=cmd_follow)
    for name in ("pause", "resume", "cancel"):
        a = sub.add_parser(name, help=f"{name} a search")
        a.add_argument("search", type=int)
        a.set_defaults(run=_action(name))
    d = sub.add_parser("download", help="build (when needed) and download a model bundle")
    d.add_argument("search", type=int)
    d.add_argument("--candidate", type=int, help="a candidate id (default: the best candidate)")
    d.add_argument("-o", "--output", help="file or directory to save to (default: here)")
    d.add_argument("--rebuild", action="store_true", help="build again even if a current bundle is ready")
    d.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the build")
    d.set_defaults(run=cmd_download)
    e = sub.add_parser("export", help="download a streamed CSV/JSON export")
    e.add_argument("search", type=int)
    e.add_argument("kind", choices=("candidates", "epochs"))
    e.add_argument("format", choices=("csv", "json"))
    e.add_argument("-o", "--output", help="file or directory to save to (default: here)")
    e.set_defaults(run=cmd_export)
    return p


def main(argv=None, out=None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    try:
        api = Api(args.url, args.token)
        return args.run(api, args, out)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
