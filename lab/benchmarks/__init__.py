"""Benchmarks behind ``lookalike bench``: speed and throughput figures, never timed tests.

Each benchmark is a function registered with :func:`benchmark`; it returns a flat dict of
figures. The runner adds the machine (cores, CPU, Python) and writes JSON, and refreshes the
generated part of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Figures = dict[str, float | int | str]
BenchFn = Callable[[], Figures]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: BenchFn


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable[[BenchFn], BenchFn]:
    def register(fn: BenchFn) -> BenchFn:
        _REGISTRY[name] = Benchmark(name, description, fn)
        return fn

    return register


def cost_per_call(name: str, calls: Sequence[Callable[[], Any]], *, warm: int = 2) -> Figures:
    """``{name}_ms_p50`` and ``{name}_core_ms``: the median wall ms and the mean core ms
    (process CPU time, all threads) of each call but the first ``warm`` (warming up)."""
    for call in calls[:warm]:
        call()
    walls = []
    cpu_started = time.process_time()
    for call in calls[warm:]:
        started = time.perf_counter()
        call()
        walls.append((time.perf_counter() - started) * 1000)
    core = (time.process_time() - cpu_started) * 1000 / max(1, len(walls))
    return {f"{name}_ms_p50": round(statistics.median(walls), 1), f"{name}_core_ms": round(core, 1)}


def registry() -> dict[str, Benchmark]:
    """Every benchmark: each module of this package registers its own on import."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(_REGISTRY)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run(only: list[str] | None = None) -> dict[str, Any]:
    benchmarks = registry()
    unknown = set(only or []) - set(benchmarks)
    if unknown:
        raise KeyError(f"unknown benchmark(s) {sorted(unknown)}; known: {sorted(benchmarks)}")
    results = {
        name: {"description": bench.description, "measured_at": _now(), **bench.run()}
        for name, bench in benchmarks.items()
        if not only or name in only
    }
    return {
        "generated_at": _now(),
        "machine": machine(),
        "results": results,
    }


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def render_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        START,
        f"Generated {report['generated_at']} by `make bench` (or `lookalike bench --only NAME`, "
        f"which refreshes one section) on {m['cores']} cores ({m['cpu']}, Python {m['python']}).",
        "",
    ]
    for name, figures in report["results"].items():
        lines += [f"### {name}", "", figures["description"], "", "| figure | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in figures.items() if key != "description"]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _merged(report: dict[str, Any], store: Path | None) -> dict[str, Any]:
    """``report`` with the figures of benchmarks it did not run taken from ``store``."""
    previous = json.loads(store.read_text()) if store is not None and store.is_file() else {}
    return {**report, "results": {**previous.get("results", {}), **report["results"]}}


def write(report: dict[str, Any], json_path: Path | None, markdown_path: Path | None) -> None:
    """Merge the report's figures into the JSON store and re-render the Markdown section.

    The store is ``json_path``, else the JSON file beside ``markdown_path`` (``BENCHMARKS.json``),
    so ``lookalike bench --only NAME`` refreshes one benchmark and keeps the others' figures.
    The Markdown keeps the figures of its own store for benchmarks that did not run."""
    beside = markdown_path.with_suffix(".json") if markdown_path else None
    store = json_path or beside
    if store is not None:
        store.write_text(json.dumps(_merged(report, store), indent=2) + "\n")
    if markdown_path is not None and markdown_path.is_file():
        block = render_markdown(_merged(report, beside))
        markdown_path.write_text(replace_section(markdown_path.read_text(), START, END, block))


def replace_section(
    text: str, start: str, end: str, block: str, *, heading: str | None = None
) -> str:
    """``text`` with its generated section (``start`` ... ``end``) replaced by ``block``, which
    carries both markers; without the markers, ``block`` (under ``heading``) is appended."""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    top = f"{heading}\n\n" if heading else ""
    return text.rstrip() + "\n\n" + top + block + "\n"


POSTGRES_ADMIN_URL = os.environ.get(
    "LOOKALIKE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A fresh Postgres database for one benchmark, dropped afterwards: its URL, or ``None``
    when Postgres cannot be reached (``LOOKALIKE_BENCH_POSTGRES_URL``)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"lookalike_bench_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        yield None
        return
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
