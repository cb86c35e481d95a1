"""`make bench`'s results: figures read from the benchmarks' JSON, results.json and the README table
(bench/_results.py, pure logic; bench/_suite.py's catalogue of runs and figures)."""

from __future__ import annotations

import math
import sys
import tomllib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from _results import (  # noqa: E402
    NO_CAUSE,
    TABLE_END,
    TABLE_START,
    Figure,
    collect,
    number,
    render_table,
    replace_table,
    results_document,
)

COST = Figure("relay.us", "relay", "cost per delivery", "µs", lambda o: o["cost"]["us"], "<=", 8)
LISTENERS = Figure("cap.listeners", "capacity", "listeners", "", lambda o: o["n"], ">=", 1500)
FLOOR = Figure("floor.us", "floor", "floor", "µs", lambda o: o["us"])  # reported, no target


def test_each_figure_is_read_from_its_benchmarks_output() -> None:
    measured = collect(
        [COST, LISTENERS, FLOOR],
        {"relay": {"cost": {"us": 9.3}}, "capacity": {"n": 1600}, "floor": {"us": 4.6}},
    )
    assert [(m.value, m.met, m.error) for m in measured] == [
        (9.3, False, None),
        (1600, True, None),
        (4.6, None, None),
    ]


def test_a_failed_missing_or_unreadable_benchmark_gives_no_value_and_says_why() -> None:
    measured = collect(
        [COST, LISTENERS, FLOOR], {"relay": RuntimeError("exit status 1"), "capacity": {"listeners": 3}}
    )
    assert [m.value for m in measured] == [None, None, None]
    assert [m.met for m in measured] == [None, None, None]
    assert measured[0].error == "relay failed: exit status 1"
    assert measured[1].error is not None and measured[1].error.startswith(
        "not in capacity's output (KeyError('n')"
    )
    assert measured[2].error == "floor was not run"


@pytest.mark.parametrize(
    ("op", "target", "value", "met"),
    [
        ("<=", 8, 8, True),
        ("<=", 8, 8.01, False),
        ("<", 9.4, 9.4, False),
        (">=", 1500, 1500, True),
        ("==", 0, 0, True),
        ("==", 0, 2, False),
        ("<=", 3, math.nan, False),  # a NaN (no samples) never meets a target
        (None, None, 5, None),
    ],
)
def test_a_target_is_met_by_its_comparison(
    op: str | None, target: float | None, value: float, met: bool | None
) -> None:
    assert Figure("f", "b", "f", "", lambda o: o, op, target).met(value) is met


def test_numbers_read_as_in_the_readme() -> None:
    assert [number(x) for x in (150_000, 1500.0, 9.34, 3.004, 4.20, 12.345, 0.0123, 0, 0.5)] == [
        "150,000",
        "1,500",
        "9.34",
        "3.004",
        "4.2",
        "12.3",
        "0.0123",
        "0",
        "0.5",
    ]


def test_the_table_puts_each_figure_against_its_target_with_the_cause_of_a_miss() -> None:
    measured = collect(
        [COST, LISTENERS, FLOOR],
        {"relay": {"cost": {"us": 9.3}}, "capacity": {"n": 1200}, "floor": {"us": 4.6}},
    )
    table = render_table(
        measured, {"relay.us": "kernel time | per send()"}, "2026-12-03 21:00 UTC", "abc1234"
    )
    lines = table.splitlines()
    assert lines[0] == "Last `make bench`: 2026-12-03 21:00 UTC, commit abc1234: 0 of 2 targets met."
    assert (
        lines[4]
        == "| cost per delivery (`relay.us`) | ≤ 8 µs | 9.3 µs | **no** | kernel time \\| per send() |"
    )
    assert lines[5] == f"| listeners (`cap.listeners`) | ≥ 1,500 | 1,200 | **no** | {NO_CAUSE} |"
    assert lines[6] == "| floor (`floor.us`) | — | 4.6 µs |  |  |"


def test_a_met_target_shows_no_cause_and_a_missing_figure_shows_its_error() -> None:
    measured = collect(
        [COST, LISTENERS], {"relay": {"cost": {"us": 7.5}}, "capacity": RuntimeError("timed out")}
    )
    lines = render_table(measured, {"relay.us": "old cause"}, "d", "c").splitlines()
    assert lines[0].endswith("1 of 2 targets met.")
    assert lines[4] == "| cost per delivery (`relay.us`) | ≤ 8 µs | 7.5 µs | yes |  |"
    assert (
        lines[5]
        == "| listeners (`cap.listeners`) | ≥ 1,500 | — | not measured | capacity failed: timed out |"
    )


def test_results_json_maps_figure_names_to_values_with_machine_date_and_commit() -> None:
    measured = collect([COST, FLOOR], {"relay": {"cost": {"us": 9.3}}, "floor": RuntimeError("boom")})
    document = results_document(measured, {"cores": 2}, "2026-12-03", "abc1234", {"relay": 0.5})
    assert document["figures"] == {"relay.us": 9.3, "floor.us": None}
    assert document["machine"] == {"cores": 2}
    assert (document["date"], document["commit"]) == ("2026-12-03", "abc1234")
    assert document["targets"] == {"relay.us": "≤ 8 µs"}
    assert document["met"] == {"relay.us": False}
    assert document["errors"] == {"floor.us": "floor failed: boom"}
    assert document["load_average_at_start"] == {"relay": 0.5}


README = "# Benchmarks\n\nIntro paragraph.\n\n## codec.py\n\ntext\n"


def test_the_table_goes_after_the_intro_once_and_is_replaced_in_place_later() -> None:
    first = replace_table(README, "| a |")
    assert (
        first
        == f"# Benchmarks\n\nIntro paragraph.\n\n{TABLE_START}\n| a |\n{TABLE_END}\n\n## codec.py\n\ntext\n"
    )
    second = replace_table(first, "| b |")
    assert second == first.replace("| a |", "| b |")
    assert replace_table(second, "| b |") == second


def test_a_readme_with_one_marker_only_is_refused() -> None:
    with pytest.raises(ValueError, match="one table marker"):
        replace_table(README + TABLE_START + "\n", "| a |")


def test_the_suites_figures_name_its_runs_and_every_noted_cause_names_a_figure() -> None:
    import _suite

    names = [figure.name for figure in _suite.FIGURES]
    assert len(names) == len(set(names))
    assert {figure.bench for figure in _suite.FIGURES} <= set(_suite.RUNS)
    assert all((BENCH / script).exists() for script, _, _ in _suite.RUNS.values())
    causes = tomllib.loads((BENCH / "causes.toml").read_text())
    assert set(causes) <= set(names), set(causes) - set(names)
