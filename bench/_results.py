"""The figures `make bench` reports (bench/_suite.py runs the benchmarks): which figure comes from which
benchmark's JSON, its target, results.json and the table in bench/README.md. Pure logic, no I/O.

A figure is read from its benchmark's output by `extract`; a benchmark that failed, or output without the
figure, gives no value and an error that the table shows (never a silent gap). A missed target shows its
cause from bench/causes.toml (keyed by figure name), or says that no cause is noted yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TABLE_START = "<!-- bench-table:start (written by `make bench`: bench/_suite.py) -->"
TABLE_END = "<!-- bench-table:end -->"
NO_CAUSE = "cause not noted yet (bench/causes.toml)"

Value = float | int | None


@dataclass(frozen=True)
class Figure:
    name: str  # results.json key and causes.toml key
    bench: str  # a run's name in bench/_suite.py's RUNS
    label: str
    unit: str
    extract: Callable[[Any], float | int]
    op: str | None = None  # "<=", ">=", "<", "==" or None (reported, no target)
    target: float | None = None

    def met(self, value: Value) -> bool | None:
        if self.op is None or self.target is None or value is None:
            return None
        if isinstance(value, float) and math.isnan(value):
            return False
        return {
            "<=": value <= self.target,
            ">=": value >= self.target,
            "<": value < self.target,
            "==": value == self.target,
        }[self.op]

    def target_text(self) -> str:
        if self.op is None or self.target is None:
            return "—"
        op = {"<=": "≤", ">=": "≥", "<": "<", "==": "="}[self.op]
        return f"{op} {number(self.target)} {self.unit}".rstrip()


def number(value: float | int) -> str:
    """1,500 / 12.3 / 3.004 / 4.2 / 0.0123: thousands separated, 3 significant digits (3 decimals from 1 to
    10, so that a value just over a target such as 3 ms does not read as 3), no trailing zeros."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if math.isnan(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


@dataclass(frozen=True)
class Measured:
    figure: Figure
    value: Value
    error: str | None  # why there is no value

    @property
    def met(self) -> bool | None:
        return self.figure.met(self.value)


def collect(figures: list[Figure], outputs: Mapping[str, Any]) -> list[Measured]:
    """Each figure from its benchmark's output: `outputs[bench]` is the parsed JSON, or an Exception for a
    benchmark that failed (or is missing, when it was not run)."""
    measured = []
    for figure in figures:
        output = outputs.get(figure.bench)
        if output is None:
            measured.append(Measured(figure, None, f"{figure.bench} was not run"))
        elif isinstance(output, Exception):
            measured.append(Measured(figure, None, f"{figure.bench} failed: {output}"))
        else:
            try:
                value = figure.extract(output)
            except (KeyError, IndexError, TypeError, ValueError, StopIteration) as exc:
                measured.append(Measured(figure, None, f"not in {figure.bench}'s output ({exc!r})"))
            else:
                measured.append(Measured(figure, value, None))
    return measured


def results_document(
    measured: list[Measured], machine: Mapping[str, Any], date: str, commit: str, loads: Mapping[str, Any]
) -> dict[str, Any]:
    """bench/results.json: figure name -> value, plus machine, date and commit (and, per figure, its
    target and whether it was met; per benchmark, the load average when it started)."""
    return {
        "machine": dict(machine),
        "date": date,
        "commit": commit,
        "figures": {m.figure.name: m.value for m in measured},
        "targets": {m.figure.name: m.figure.target_text() for m in measured if m.figure.op is not None},
        "met": {m.figure.name: m.met for m in measured if m.figure.op is not None},
        "errors": {m.figure.name: m.error for m in measured if m.error is not None},
        "load_average_at_start": dict(loads),
    }


def render_table(measured: list[Measured], causes: Mapping[str, str], date: str, commit: str) -> str:
    """The README table: each figure against its target, measured value, and the cause of a miss."""
    met = sum(1 for m in measured if m.met is True)
    targeted = sum(1 for m in measured if m.figure.op is not None)
    lines = [
        f"Last `make bench`: {date}, commit {commit}: {met} of {targeted} targets met.",
        "",
        "| figure | target | measured | met | cause where missed |",
        "|---|---|---|---|---|",
    ]
    for m in measured:
        figure = m.figure
        if m.value is None:
            value, verdict, cause = "—", "not measured", m.error or ""
        else:
            value = f"{number(m.value)} {figure.unit}".rstrip()
            verdict = {True: "yes", False: "**no**", None: ""}[m.met]
            cause = causes.get(figure.name, NO_CAUSE) if m.met is False else ""
        label = f"{figure.label} (`{figure.name}`)"
        lines.append(f"| {label} | {figure.target_text()} | {value} | {verdict} | {_cell(cause)} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def replace_table(readme: str, table: str) -> str:
    """The README with the text between the table markers replaced; the markers and the table are added
    after the first paragraph (the title's) when absent."""
    block = f"{TABLE_START}\n{table}\n{TABLE_END}"
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start != -1 and end > start:
        return readme[:start] + block + readme[end + len(TABLE_END) :]
    if start != -1 or end != -1:
        raise ValueError("bench/README.md has one table marker without the other: fix it by hand")
    head, sep, rest = readme.partition("\n\n")
    head2, sep2, rest2 = rest.partition("\n\n")
    return f"{head}{sep}{head2}{sep2}{block}\n\n{rest2}" if sep2 else f"{readme.rstrip()}\n\n{block}\n"
