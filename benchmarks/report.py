"""Write the results: `latest.md` for people, `results.json` with every raw measurement."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.floors import LOADS_EXTENSIONS, Ceiling
from benchmarks.measure import Measurement
from benchmarks.observe import SAMPLE_ROWS
from benchmarks.servers import server_versions
from benchmarks.suite import DSDB, TITLES, PathResult

HERE = Path(__file__).resolve().parent
PLAN_AIM_SECONDS = 2.0


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024**2, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **server_versions(),
        "dsdb_commit": dsdb_version(),
        "load_average": load_average(),
    }


def load_average() -> str:
    """The machine's load over 1, 5 and 15 minutes: how busy the shared machine was."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def dsdb_version() -> str:
    """The commit dsdb runs from, marked when dsdb_plan/ has uncommitted changes."""

    def git(*arguments: str) -> str:
        run = subprocess.run(["git", *arguments], cwd=HERE, capture_output=True, text=True)
        return run.stdout.strip()

    dirty = git("status", "--porcelain", "--", "../dsdb_plan")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")


def _seconds(result: PathResult, side: str) -> str:
    best = result.best_dsdb if side == "dsdb" else result.best_baseline
    return f"{best.seconds:.2f}" if best else "—"


def _rate(result: PathResult) -> str:
    best = result.best_dsdb
    return f"{result.rows / best.seconds:,.0f}" if best else "—"


def _baseline_rate(result: PathResult) -> str:
    best = result.best_baseline
    return f"{result.rows / best.seconds:,.0f}" if best else "—"


def _aim(result: PathResult) -> str:
    if result.aim is None:
        return "—"
    return f"≥ {result.aim:.2f}" if result.aim >= 0.5 else f"≥ 1/{round(1 / result.aim)}"


def _ratio(result: PathResult) -> str:
    if result.ratio is None:
        return "—"
    mark = "" if result.aim is None or result.ratio >= result.aim else " ✗"
    # Rounded down: 0.797 is not written as 0.80, which would read as meeting the aim.
    return f"{math.floor(result.ratio * 100) / 100:.2f}{mark}"


def _mb(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "—"


def _notes(result: PathResult) -> str:
    notes = [result.skipped] if result.skipped else []
    if result.name == "plan" and result.best_dsdb:
        aim = "under" if result.best_dsdb.seconds < PLAN_AIM_SECONDS else "over"
        notes.append(f"{aim} the {PLAN_AIM_SECONDS:.0f} s aim")
    notes.extend(result.problems)
    return "; ".join(dict.fromkeys(notes))  # each problem once, even if every run had it


def write(
    info: dict[str, Any],
    rows: int,
    repeat: int,
    results: dict[str, PathResult],
    small_rows: int | None,
    small: dict[str, PathResult] | None,
    setup_seconds: float,
    apply_all: Measurement | None,
    ceilings: list[Ceiling],
    loads: list[str] | None = None,
    command: str = "",
    folder: Path = HERE,
) -> None:
    """Write `latest.md` (this run, for people; `results.md` is the log of runs worth
    keeping, sections pasted from it) and `results.json` (every raw measurement) into
    `folder`."""
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    small_label = f"peak RSS MB at N={small_rows:,}" if small_rows else None
    lines = [
        "# Benchmark results",
        "",
        f"Measured {date} with `{command or f'python -m benchmarks.run --rows {rows}'}` "
        f"(see [README.md](README.md)). Overwritten by every run; the raw numbers are in "
        "`results.json`.",
        "",
        f"- N = {rows:,} parent rows + {rows // 5:,} child rows = {rows + rows // 5:,} rows per "
        f"path (data generated and loaded in {setup_seconds:.0f} s, not timed).",
        f"- Machine: {info['cpus']} CPUs ({info['cpu']}), {info['memory_gb']} GB RAM; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}, "
        f"MariaDB {info['mariadb']}; dsdb at commit {info['dsdb_commit']}"
        + (
            f" at the start, {info['dsdb_commit_at_end']} at the end (dsdb changed during the "
            "run: later paths ran newer code)."
            if info.get("dsdb_commit_at_end", info["dsdb_commit"]) != info["dsdb_commit"]
            else "."
        ),
        f"- Load average (1 / 5 / 15 min) at the start {info['load_average']}, at the end "
        f"{info.get('load_average_at_end', '—')}, on {info['cpus']} CPUs: above "
        f"{info['cpus']} the machine was loaded by other work and every time is slower "
        "than the machine's own.",
        f"- Each time is the median of {repeat} runs, one per round, every contender of a "
        "path once a round in an order rotated round by round: the machine is shared with "
        "other engineers' test runs, so single runs are noisy (*Round by round* below has "
        "every run and each round's load). Times are wall clock of the whole process "
        "(start-up, connecting, creating tables, copying, committing).",
        "- Ratio = baseline seconds / dsdb seconds (dsdb's throughput as a share of the "
        "baseline's); each path's aim is in its own column (✗ marks a miss), and its "
        "baseline is the first line of its table under *Side by side*. Peak RSS is the client "
        "process's own (`ru_maxrss`), not the database servers'.",
        "",
        "| path | dsdb s | baseline s | dsdb rows/s | baseline rows/s | ratio | aim "
        f"| dsdb peak RSS MB | baseline peak RSS MB |{f' {small_label} |' if small else ''}"
        " notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: |" if small else "")
        + " --- |",
    ]
    for name, result in results.items():
        baseline_rss = max((m.peak_rss_mb for m in result.baseline if m.ok), default=None)
        small_rss = _mb(small[name].peak_rss_mb) if small and name in small else "—"
        lines.append(
            f"| {TITLES[name]} | {_seconds(result, 'dsdb')} | {_seconds(result, 'baseline')} "
            f"| {_rate(result)} | {_baseline_rate(result)} | {_ratio(result)} | {_aim(result)} "
            f"| {_mb(result.peak_rss_mb)} | {_mb(baseline_rss)} |"
            + (f" {small_rss} |" if small else "")
            + f" {_notes(result)} |"
        )
    if apply_all is not None and apply_all.ok:
        lines += [
            "",
            f"Before the plan, `dsdb apply` of the whole manifest (every path above at once) "
            f"took {apply_all.seconds:.1f} s with a peak RSS of {apply_all.peak_rss_mb:.0f} MB "
            "(one run).",
        ]
    if small:
        lines += [
            "",
            f"Memory check: dsdb's peak RSS at N={small_rows:,} and at N={rows:,}. A peak that "
            "does not grow with N is bounded; the aim is under 200 MB at 10,000,000 rows.",
        ]
    lines += _verification(results)
    lines += _side_by_side(results)
    lines += _rounds(results, loads or [])
    lines += _ceilings(ceilings)
    profiled = [result for result in results.values() if result.hotspots]
    if profiled:
        lines += [
            "",
            "## Where the time goes",
            "",
            f"Paths under the aim, run once more under py-spy (100 samples/s, every thread) "
            f"at N={rows:,}. Each line: where (file:function:line) and its share of the "
            "samples; time waiting for a database counts, a thread waiting for another "
            "thread does not. *Own time* is the Python line that was running "
            "(time in C code, e.g. a driver call, counts for the line that called it); "
            "*inclusive* also counts what a function called, so nested functions overlap.",
        ]
        for result in profiled:
            lines += ["", f"### {TITLES[result.name]}"]
            for title, hotspots in result.hotspots.items():
                lines += ["", f"{title}:", ""]
                lines += [f"- {share:.0%} `{where}`" for where, share in hotspots]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.md").write_text("\n".join(lines) + "\n")
    raw = {
        "date": date,
        "machine": info,
        "rows": rows,
        "repeat": repeat,
        "setup_seconds": setup_seconds,
        "apply_all": _runs([apply_all] if apply_all else []),
        "ceilings": [asdict(ceiling) | {"ratio": ceiling.ratio} for ceiling in ceilings],
        "command": command,
        "load_average_per_round": loads or [],
        "results": {name: _raw(result) for name, result in results.items()},
        "memory_check": {
            "rows": small_rows,
            "results": {name: _raw(result) for name, result in (small or {}).items()},
        },
    }
    (folder / "results.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")


def _verification(results: dict[str, PathResult]) -> list[str]:
    """Each dsdb's median run of each migration split into verifying and the rest (the
    copy), each on a line of its own, beside the baseline, which copies without verifying:
    the copy's own ratio."""
    lines = []
    for name, result in results.items():
        baseline = result.best_baseline
        for key in (DSDB, *result.labels):
            best = result.best(key)
            verifying = best.verifying_seconds if best else None
            if best is None or verifying is None:
                continue  # not a dsdb, or one that does not say what verifying took
            rest = best.seconds - verifying
            ratio = f"{math.floor(baseline.seconds / rest * 100) / 100:.2f}" if baseline else "—"
            label = "**dsdb**" if key == DSDB else result.labels[key]
            lines.append(
                f"| {TITLES[name]} | {label} | {best.seconds:.2f} | {verifying:.2f} "
                f"| {rest:.2f} | {_seconds(result, 'baseline')} | {ratio} |"
            )
    if not lines:
        return []
    return [
        "",
        "## Verification's share",
        "",
        "The time dsdb's apply says verifying took beyond copying (waiting for the source's "
        "digest taken beside the copy, digesting the target, comparing), in its median run, "
        "and the rest of that run beside the baseline, which does not verify.",
        "",
        "| path | contender | dsdb s | verifying s | dsdb without verifying s | baseline s "
        "| ratio without verifying |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *lines,
    ]


def _side_by_side(results: dict[str, PathResult]) -> list[str]:
    """Per path, dsdb beside every baseline and peer: time, memory and what each landed."""
    paths = [r for r in results.values() if r.labels]
    if not paths:
        return []
    lines = [
        "",
        "## Side by side",
        "",
        "Every contender in its own process on the same data, in the same run, its median "
        "run shown. *vs dsdb* is dsdb's time over the contender's: above 1 the contender is that "
        "many times faster. *What lands* is measured on the target after the first run: "
        "column types against the source's, NOT NULL, primary and foreign keys, the index, "
        "identity (the source's keys numbered by the engine), extra columns, and the values "
        f"of the first {SAMPLE_ROWS:,} rows of each table by key, compared exactly "
        "(a double must come back as the same double, a timestamp as the same instant). "
        "*verified* is dsdb's own report that it checked the copy against the source.",
    ]
    for result in paths:
        dsdb = result.best_dsdb
        entries = [("dsdb", "**dsdb**"), *result.labels.items()]
        rows = []
        for key, label in entries:
            best = result.best(key)
            if best is None:
                runs = result.dsdb if key == "dsdb" else result.runs.get(key, [])
                note = result.notes.get(key) or (
                    f"failed: {runs[0].last_line()}" if runs else result.skipped or "not run"
                )
                rows.append((math.inf, f"| {label} | — | — | — | — | {_cell(note)} |"))
                continue
            versus = f"{dsdb.seconds / best.seconds:.2f}" if dsdb else "—"
            landed = result.landed.get(key, "—")
            if key in result.notes:
                landed = f"{result.notes[key]}; {landed}"
            rows.append(
                (
                    best.seconds,
                    f"| {label} | {best.seconds:.2f} | {result.rows / best.seconds:,.0f} "
                    f"| {best.peak_rss_mb:.0f} | {versus} | {_cell(landed)} |",
                )
            )
        lines += [
            "",
            f"### {TITLES[result.name]}",
            "",
            "| tool | s | rows/s | peak RSS MB | vs dsdb | what lands |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            *(row for _, row in sorted(rows, key=lambda entry: entry[0])),
        ]
    return lines


def _rounds(results: dict[str, PathResult], loads: list[str]) -> list[str]:
    """Every run of every contender, round by round, with each round's ratio to the
    baseline's run of the same round."""
    lines = [
        "",
        "## Round by round",
        "",
        "Each contender's runs in round order (seconds), their median, its median CPU time "
        "(user + system: steadier than wall time on a loaded machine), its highest peak RSS, "
        "and each round's ratio (the baseline's time over the contender's in that round, "
        "both run under about the same load) with the median of those ratios.",
    ]
    if loads:
        lines += ["", "Load average (1 / 5 / 15 min) as each round began: " + "; ".join(loads)]
    for result in results.values():
        keys = [key for key in ("baseline", DSDB, *result.labels) if result.measurements(key)]
        if not keys:
            continue
        lines += [
            "",
            f"### {TITLES[result.name]}",
            "",
            "| contender | runs s | median s | CPU s | peak RSS MB | ratio per round "
            "| median ratio |",
            "| --- | --- | ---: | ---: | ---: | --- | ---: |",
        ]
        for key in dict.fromkeys(keys):
            runs = result.measurements(key)
            ok = [m for m in runs if m.ok or m.returncode == 2]
            ratios = result.round_ratios(key) if result.baseline and key != "baseline" else []
            found = [ratio for ratio in ratios if ratio is not None]
            label = "**dsdb**" if key == DSDB else result.labels.get(key, key)
            lines.append(
                f"| {label} | {', '.join(_run(m) for m in runs)} "
                f"| {_median(m.seconds for m in ok)} | {_median(m.cpu_seconds for m in ok)} "
                f"| {_mb(max((m.peak_rss_mb for m in ok), default=None))} "
                f"| {', '.join('—' if r is None else f'{r:.2f}' for r in ratios) or '—'} "
                f"| {_median(found)} |"
            )
    return lines


def _run(measurement: Measurement) -> str:
    return f"{measurement.seconds:.2f}" if measurement.ok or measurement.returncode == 2 else "✗"


def _median(values: Iterable[float]) -> str:
    found = list(values)
    return f"{statistics.median(found):.2f}" if found else "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ceilings(ceilings: list[Ceiling]) -> list[str]:
    if not ceilings:
        return []
    lines = [
        "",
        "## What the aim leaves room for on the SQLite-source paths",
        "",
        "Besides the baseline's work, dsdb must start up with the libraries it is built on and "
        "verify what it copied (see [floors.py](floors.py)). SQLite has no hash function "
        f"built in, and this Python's sqlite3 {'can' if LOADS_EXTENSIONS else 'cannot'} "
        "load extensions, so a SQLite table is checksummed by fetching its rows into "
        "Python, and the portable checksum a PostgreSQL target is compared with is "
        "computed in Python too. Each floor below is that work alone, timed in this run; "
        "even if everything else were free, the ratio could be at most:",
        "",
        "| path | floor | floor s | baseline s | best ratio possible |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {TITLES[c.path]} | {c.floor} | {c.seconds:.2f} | {c.baseline:.2f} | {c.ratio:.2f} |"
        for c in ceilings
    ]
    return [
        *lines,
        "",
        "The SQLite → PostgreSQL floor assumes one process; a second process could digest the "
        "rows beside the copy, on a second core that the PostgreSQL server also needs "
        "during the COPY.",
    ]


def _runs(measurements: list[Measurement]) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in asdict(m).items() if key != "output"}
        | ({"error": m.last_line()} if not m.ok else {})
        for m in measurements
    ]


def _raw(result: PathResult) -> dict[str, Any]:
    return {
        "rows": result.rows,
        "dsdb": _runs(result.dsdb),
        "baseline": _runs(result.baseline),
        "contenders": {
            key: {
                "label": label,
                "runs": _runs(result.runs.get(key, [])),
                "landed": result.landed.get(key),
                "note": result.notes.get(key),
            }
            for key, label in result.labels.items()
        },
        "dsdb_landed": result.landed.get("dsdb"),
        "aim": result.aim,
        "ratio": result.ratio,
        "ratio_per_round": {
            key: result.round_ratios(key) for key in (DSDB, *result.labels) if key != "baseline"
        },
        "problems": result.problems,
        "skipped": result.skipped,
        "hotspots": result.hotspots,
    }
