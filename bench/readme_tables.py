"""Write the README's benchmark table from bench/results/*.json: never retyped.

    .venv/bin/python bench/readme_tables.py          # rewrite README.md between the markers
    .venv/bin/python bench/readme_tables.py --check  # exit 1 when README.md is not what the JSON gives

Each row names the code path it measures and the run it comes from (date, full or
quick, the load average when it started: the machine is shared, and a busy one gives
low absolute numbers). A result file that is missing gives no row.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- bench-tables:begin -->", "<!-- bench-tables:end -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def n(value, digits: int = 0) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.{digits}f}"


def ms(value) -> str:
    return n(value, 1 if value is not None and value < 10 else 0) + " ms"


def run_of(d: dict) -> str:
    m = d.get("machine", {})
    load = m.get("load_avg_start") or ["?"]
    return f"{d.get('date', '?')[:10]}, {'quick' if d.get('quick') else 'full'}, load {load[0]}"


def training_rows(d):
    for r in d["rows"]:
        yield (f"training overhead, {r['workload']}", "`workers.training.run_candidate`: claim, epochs through "
               "`services.epoch_record`, checkpoint, finish", f"{n(r['ours_samples_per_s'])} samples/s",
               f"plain loop, same recipe and augmentation: {n(r['bare_samples_per_s'])}",
               f"{r['ratio']:.2f} (goal ≥ {r['goal_ratio']})", run_of(d))


def data_rows(d):
    for r in d["rows"]:
        variants = r["variants"]
        ours = next(iter(variants.values()))
        loaders = {k: v for k, v in variants.items() if k.startswith("DataLoader")}
        best = max(loaders, key=lambda k: loaders[k]["samples_per_s"])
        yield (f"data path, {r['data_set'].split(' (')[0]}, {r['measure']}",
               f"`workers.training.Augmenter` ({r.get('augmentation', '?')}, on {d['machine'].get('device', '?')})",
               f"{n(ours['samples_per_s'])} samples/s",
               f"best DataLoader, same per-image work ({best.split(', ', 1)[1]}): {n(loaders[best]['samples_per_s'])}",
               f"{r['ours_over_best_dataloader']:.1f}× (goal ≥ {r['goal']:.0f}×)", run_of(d))


def push_rows(d):
    for r in d["rows"]:
        who = f"{r['writers']} writer{'s' if r['writers'] > 1 else ''}, {r['clients']} page{'s' if r['clients'] > 1 else ''}"
        poll = r["poll"]
        dr = r.get("drawn") or {}
        if dr.get("samples"):
            yield (f"push, commit → drawn, {who} ({dr['pages']} in Chromium)",
                   "`services.epoch_record` as the worker calls it → channel layer → `SearchConsumer` → "
                   "`static/js/search.js` redraw (data-last-seq)",
                   f"p50 {ms(dr['p50_ms'])}, p99 {ms(dr['p99_ms'])}, max {ms(dr['max_ms'])}",
                   f"REST poll every 2 s, same run: p99 {ms(poll['p99_ms'])}",
                   f"{'goal p99 < 100 ms met' if dr['p99_ms'] < 100 else 'goal p99 < 100 ms NOT met'}", run_of(d))
        if r.get("python_clients", r["clients"]):
            yield (f"push, commit → frame read, {who} ({r.get('python_clients', r['clients'])} Python clients)",
                   "the same, up to the websocket frame (no drawing)",
                   f"p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])}, lost {r['lost']}",
                   f"REST poll p99 {ms(poll['p99_ms'])}", f"{poll['p99_ms'] / r['p99_ms']:.0f}× sooner at p99",
                   run_of(d))


def orchestration_rows(d):
    for r in d["rows"]:
        yield (f"orchestration per trial at {n(r['history'])} trials",
               "`services.search_advance` + `candidate_claim` + `candidate_finish` (random strategy), warm process",
               ms(r["ours_full_cycle_ms"]), f"Optuna ask+tell, RDBStorage, same Postgres: {ms(r['optuna_ask_tell_ms'])}",
               f"Optuna ÷ ours {r['optuna_over_ours_full']:.1f}", run_of(d))


def cold_rows(d):
    for r in d["rows"]:
        yield (f"first trial after a restart, {n(r['history'])} trials", "fresh process each: `search_advance` + "
               "claim + finish; start-up (`django.setup()`) apart",
               f"{ms(r['ours_first_ms'])} (+ start-up {ms(r['ours_startup_ms'])})",
               f"Optuna in a fresh process, load_study + ask + tell: {ms(r['optuna_first_ms'])} "
               f"(+ start-up {ms(r['optuna_startup_ms'])})",
               f"{r['optuna_over_ours_first']:.1f}× first trial; {r['optuna_over_ours_with_startup']:.2f}× with start-up",
               run_of(d))


def soak_rows(d):
    if d is None:
        return
    fills = d.get("gap_fills") or {}
    memory = d.get("memory") or {}
    labels = {"daphne_rss_mb": "Daphne RSS", "writers_pss_mb": "writers PSS", "redis_used_mb": "Redis",
              "pg_connections": "Postgres connections", "pg_backends_anon_mb": "Postgres backends (private)"}
    flat = ", ".join(f"{labels.get(k, k)} {100 * v['change']:+.1f}%" for k, v in memory.items()
                     if v.get("change") is not None)
    if memory:
        flat += " (" + ("flat within 5%" if d.get("memory_flat") else "NOT flat") + ")"
    yield (f"soak, {d['writers']} writers as fast as they can, {d['clients']} pages, {n(d['seconds'])} s",
           "`services.epoch_record` as the worker calls it, one Daphne",
           f"{n(d['epochs_written'])} epochs; missing {d['missing_total']}, out of order {d['out_of_order_total']}, "
           f"gap fills {fills.get('page_fills', '–')} (pages; jump {fills.get('jump_page_fills', '–')}, "
           f"late {fills.get('late_page_fills', '–')})", "", f"memory from a tenth of the run to its end: {flat or '–'}",
           run_of(d))


def web_rows(d):
    for r in d["rows"]:
        yield (f"cheap page while {r['heavy']} heavy requests run, {r['server']}",
               f"{r['cheap_path']} while {r['heavy_path']} runs", f"p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])}",
               f"alone: p99 {ms(r['alone_p99_ms'])}", "goal p99 < 100 ms " + ("met" if r["p99_ms"] < 100 else "NOT met"),
               run_of(d))
    for r in d["rows"]:
        if "heavy_alone_p50_ms" in r:
            yield (f"Pareto data request alone, {r['server']}",
                   f"`searches.views.search_scatter` -> `selectors.scatter_points`: {r['heavy_path']}",
                   f"p50 {ms(r['heavy_alone_p50_ms'])}", "–",
                   "goal < 100 ms " + ("met" if r["heavy_alone_p50_ms"] < 100 else "NOT met"), run_of(d))


SOURCES = [("training_overhead", training_rows), ("data_pipeline", data_rows), ("push_latency", push_rows),
           ("orchestration", orchestration_rows), ("cold_start", cold_rows), ("web_tier", web_rows),
           ("soak", soak_rows), ("soak_10min", soak_rows)]


def table() -> str:
    lines = ["| benchmark | code path measured | NASWeb | baseline, same run | ratio / goal | run |",
             "|---|---|---|---|---|---|"]
    for name, rows in SOURCES:
        d = load(name)
        if d is None:
            continue
        for row in rows(d):
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = README.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"README.md has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if args.check:
        sys.exit(0 if new == text else "README.md's benchmark table differs from bench/results: run bench/readme_tables.py")
    README.write_text(new)
    print(f"wrote the benchmark table of {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
