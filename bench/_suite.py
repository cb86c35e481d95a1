"""`make bench`: run every benchmark (short settings, ~15 min on the 2-core VM), write bench/results.json and
the table at the top of bench/README.md, and print the table.

    .venv/bin/python bench/_suite.py                  # everything
    .venv/bin/python bench/_suite.py --only codec relay_200x50   # some runs; the other figures keep the
                                                                 # values of the last results.json
    .venv/bin/python bench/_suite.py --table     # the table again from results.json (after editing causes)

Each run is a benchmark script with its arguments; its JSON output gives the figures (bench/_results.py
reads them). A benchmark that fails is reported in the table and makes the suite exit non-zero, after the
others have run. The benchmarks that need JACK start their own `jackd -d dummy`; the system packages come
from the Makefile's `system` target. Causes of missed targets: bench/causes.toml.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Figure, Measured, collect, render_table, replace_table, results_document  # noqa: E402

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results.json"
README = BENCH / "README.md"
CAUSES = BENCH / "causes.toml"

# name -> (script, arguments, timeout s): the short settings of each benchmark.
RUNS: dict[str, tuple[str, list[str], float]] = {
    "codec": ("codec.py", [], 120),
    "devices": ("devices.py", ["--midi-events", "300"], 300),
    "e2e_latency": ("e2e_latency.py", ["--scenario", "loopback", "jitter", "wan"], 600),
    "engine_cpu": ("engine_cpu.py", ["--seconds", "10"], 180),
    "floor_200x50": ("floor.py", ["-n", "200", "-r", "50", "-d", "5"], 180),
    "loadgen_3000x50": ("floor.py", ["-n", "3000", "-r", "50", "-d", "5"], 300),
    "relay_10x20": ("relay.py", ["-n", "10", "-r", "20", "-d", "5"], 180),
    "relay_50x50": ("relay.py", ["-n", "50", "-r", "50", "-d", "5"], 180),
    "relay_200x50": ("relay.py", ["-n", "200", "-r", "50", "-d", "10"], 180),
    "relay_500x20": ("relay.py", ["-n", "500", "-r", "20", "-d", "5"], 180),
    "relay_nodes2": ("relay.py", ["--nodes", "2", "-n", "200", "-r", "50", "-d", "10"], 300),
    "relay_idle": ("relay.py", ["--idle", "1000"], 300),
    "relay_crowded": ("relay.py", ["--crowded", "2000", "-d", "5"], 300),
    "relay_guessing": ("relay.py", ["--guessing", "80"], 300),
    "relay_churn": ("relay.py", ["--churn", "3000"], 900),
    "capacity": ("capacity.py", ["--seconds", "2", "--player-rates", "5", "10", "20", "30", "40"], 900),
    "playout_sim": ("playout_sim.py", ["--seeds", "20", "--variant", "default"], 300),
    "network": ("network.py", ["--seeds", "1"], 600),
    "midi_out": ("midi_out.py", ["--periods", "32", "--repeat", "1"], 300),
    "jack_midi_stall": ("jack_midi_stall.py", [], 300),
    "tui_render": ("tui_render.py", ["--frames", "200", "--idle-seconds", "5"], 300),
}


def _case(results: list[dict[str, Any]], **where: Any) -> dict[str, Any]:
    return next(r for r in results if all(r[k] == v for k, v in where.items()))


def _relay(n: int, r: int, mpp_p99: float, us_target: float | None = None) -> list[Figure]:
    """A row of bench/relay.py's loads: p99 against the MPP server's on this machine (ANCHORS.md)."""
    run = f"relay_{n}x{r}"
    return [
        Figure(
            f"{run}.p99_ms", run, f"relay {n} listeners × {r} notes/s, p99 (MPP: {mpp_p99} ms)", "ms",
            lambda o: o["latency_ms"]["p99"], "<", mpp_p99,
        ),
        Figure(f"{run}.lost", run, f"relay {n} × {r}, notes lost", "", lambda o: o["lost"], "==", 0),
        Figure(
            f"{run}.server_us_per_delivery", run, f"relay {n} × {r}, server CPU per delivery", "µs",
            lambda o: o["server_us_per_delivery"],
            None if us_target is None else "<=", us_target,
        ),
    ]  # fmt: skip


def _nodes() -> list[Figure]:
    """bench/relay.py --nodes 2 (200 × 50, issue 11): the listeners on node b hear the sender on node a
    through Redis; their p99 against a's listeners and against the same load on one node."""
    run = "relay_nodes2"
    return [
        Figure(
            f"{run}.cross_node_p99_ms", run, "2 nodes, 200 × 50: p99 of the listeners on the other node",
            "ms", lambda o: o["cross_node_p99_ms"],
        ),
        Figure(
            f"{run}.cross_node_extra_ms", run, "2 nodes, 200 × 50: p99 other node − p99 sender's node", "ms",
            lambda o: o["cross_node_extra_ms"], "<=", 5,
        ),
        Figure(
            f"{run}.extra_vs_one_node_ms", run, "2 nodes, 200 × 50: p99 other node − p99 of 1 node on Redis",
            "ms", lambda o: o["cross_node_extra_vs_one_node_ms"], "<=", 5,
        ),
        Figure(
            f"{run}.lost", run, "1 and 2 nodes, 200 × 50, notes lost", "",
            lambda o: o["lost"] + o["one_node"]["lost"], "==", 0,
        ),
        Figure(
            f"{run}.a.server_us_per_delivery", run, "2 nodes, 200 × 50: sender's node, CPU/delivery", "µs",
            lambda o: o["per_node"][0]["server_us_per_delivery"],
        ),
        Figure(
            f"{run}.b.server_us_per_delivery", run, "2 nodes, 200 × 50: the other node, CPU/delivery", "µs",
            lambda o: o["per_node"][1]["server_us_per_delivery"],
        ),
        Figure(
            f"{run}.one_node.server_us_per_delivery", run, "1 node on Redis, 200 × 50: CPU/delivery", "µs",
            lambda o: o["one_node"]["per_node"][0]["server_us_per_delivery"],
        ),
    ]  # fmt: skip


def _network(base: int, jitter: int) -> Figure:
    label = f"{base}±{jitter}"
    return Figure(
        f"network.{base}_{jitter}.ioi_error_p99_ms", "network", f"network {label} ms, IOI error p99", "ms",
        lambda o: _case(o["runs"], path=label)["ioi_error_ms"]["p99"], "<=", 3,
    )  # fmt: skip


FIGURES: list[Figure] = [
    Figure(
        "codec.note_batch_1.round_trip_us", "codec", "codec: 1-event note batch, encode + decode", "µs",
        lambda o: _case(o["results"], case="note_batch_1", mode="plain")["round_trip_us"], "<=", 10,
    ),
    Figure(
        "devices.render_32_players.realtime", "devices", "synth render, 32 players × 4 notes", "× real time",
        lambda o: _case(o["render"], players=32)["realtime_factor"], ">=", 5,
    ),
    Figure(
        "devices.synth_play.us_per_event", "devices", "`Synth.play()` per event", "µs",
        lambda o: o["play_calls"]["us_per_event"], "<=", 20,
    ),
    Figure(
        "devices.midi_in.p99_ms", "devices", "MIDI in through JACK (256 frames), key → event loop, p99", "ms",
        lambda o: o["midi_input_jack"]["delivered_p99_ms"], "<=", 10.67,
    ),
    Figure(
        "devices.midi_in.lost", "devices", "MIDI in through JACK, events lost", "",
        lambda o: o["midi_input_jack"]["lost"], "==", 0,
    ),
    Figure(
        "e2e.loopback.latency_p99_ms", "e2e_latency", "keypress → remote sound (JACK 48 kHz/128), p99", "ms",
        lambda o: o["loopback"]["latency_ms"]["p99"], "<=", 12,
    ),
    Figure(
        "e2e.jitter15.ioi_error_p99_ms", "e2e_latency", "rhythm (IOI) error under ±15 ms jitter, p99", "ms",
        lambda o: o["jitter"]["ioi_error_ms"]["p99"], "<=", 3,
    ),
    Figure(
        "e2e.jitter15.playout_delay_ms", "e2e_latency", "playout delay under ±15 ms jitter, settled", "ms",
        lambda o: o["jitter"]["playout_delay_ms_final"], "<=", 35,
    ),
    Figure(
        "e2e.wan150.ioi_error_p99_ms", "e2e_latency", "rhythm (IOI) heard, 150 ± 60 ms up and down, p99",
        "ms", lambda o: o["wan"]["ioi_error_ms"]["p99"], "<=", 3,
    ),
    Figure(
        "e2e.wan150.notes_not_heard", "e2e_latency", "notes not heard, 150 ± 60 ms up and down", "",
        lambda o: o["wan"]["notes_sent"] - o["wan"]["notes_heard"], "==", 0,
    ),
    Figure(
        "engine.listener_cpu_pct", "engine_cpu", "client engine (headless) at 50 notes/s, CPU", "% of a core",
        lambda o: o["headless"]["cpu_percent_of_one_core"],
    ),
    Figure(
        "tui.roll_80x24.p99_ms", "tui_render", "TUI roll frame 80x24, p99", "ms",
        lambda o: o["roll_80x24"]["roll"]["p99_ms"], "<=", 3,
    ),
    Figure(
        "tui.roll_160x48.p99_ms", "tui_render", "TUI roll frame 160x48, p99", "ms",
        lambda o: o["roll_160x48"]["roll"]["p99_ms"], "<=", 3,
    ),
    Figure(
        "tui.idle_in_room.cpu_pct", "tui_render", "TUI in tmux 120x36 at 50 notes/s, CPU", "% of a core",
        lambda o: o["idle_in_room"]["tui_120x36"]["cpu_percent_of_one_core"], "<=", 10,
    ),
    Figure(
        "playout_sim.jitter15.ioi_p99_ms", "playout_sim", "playout rule, ±15 ms jitter, IOI p99", "ms",
        lambda o: o[0]["jitter15"]["ioi_p99_ms"]["median"], "<=", 3,
    ),
    Figure(
        "playout_sim.jitter15.settled_ms", "playout_sim", "playout rule, ±15 ms jitter, settled delay", "ms",
        lambda o: o[0]["jitter15"]["settled_delay_ms"]["median"], "<=", 35,
    ),
    Figure(
        "playout_sim.lost", "playout_sim", "playout rule, notes lost (all scenarios, all seeds)", "",
        lambda o: sum(s["lost"] for k, s in o[0].items() if k != "variant"), "==", 0,
    ),
    *[_network(base, jitter) for base, jitter in ((20, 15), (80, 30), (150, 60))],
    Figure(
        "network.late_pct", "network", "network paths, late events", "%",
        lambda o: round(100 * sum(r["late"] for r in o["runs"]) / sum(r["events"] for r in o["runs"]), 2),
        "<=", 0.5,
    ),
    Figure(
        "network.lost", "network", "network paths, events lost", "",
        lambda o: sum(r["lost"] for r in o["runs"]), "==", 0,
    ),
    Figure(
        "network.settled_over_largest_ms", "network",
        "network paths, settled delay − the largest transit seen (worst path)", "ms",
        lambda o: max(r["settled_over_largest_ms"] for r in o["runs"]), "<=", 10,
    ),
    Figure(
        "midi_out.ioi_error_p99_ms", "midi_out", "MIDI out at a JACK port (32 frames), IOI error p99", "ms",
        lambda o: o["runs"][0]["ioi_error_ms"]["p99"], "<=", 3,
    ),
    Figure(
        "jack_midi_stall.repeated_without_stalls", "jack_midi_stall",
        "JACK MIDI, messages delivered twice with no stalls", "",
        lambda o: sum(r["arrived_more_than_once"] for r in o["runs"] if r["stops"] == 0), "==", 0,
    ),
    Figure(
        "floor.200x50.us_per_delivery", "floor_200x50", "floor: bare fan-out 200 × 50, CPU/delivery", "µs",
        lambda o: o["fanout_us_per_delivery"],
    ),
    Figure(
        "loadgen.deliveries_per_s", "loadgen_3000x50", "load generator: deliveries received per s", "/s",
        lambda o: o["deliveries_per_s"], ">=", 150_000,
    ),
    Figure(
        "loadgen.cores", "loadgen_3000x50", "load generator at 150,000/s: CPU (must leave a core)", "cores",
        lambda o: o["load_cores"], "<", 1.0,
    ),
    *_relay(10, 20, 3.0),
    *_relay(50, 50, 4.2),
    *_relay(200, 50, 9.4, us_target=8.05),  # half the peer's 16.1 µs (issue 13)
    Figure(
        "relay_200x50.p99_target_ms", "relay_200x50", "relay 200 × 50, p99 (issue 9 target)", "ms",
        lambda o: o["latency_ms"]["p99"], "<=", 9,
    ),
    *_relay(500, 20, 23.5),
    *_nodes(),
    Figure(
        "relay.idle_kib_per_connection", "relay_idle", "relay: RSS per idle connection (1,000)", "KiB",
        lambda o: o["rss_per_connection_kib"], "<=", 30,
    ),
    Figure(
        "relay.crowded_lobby.p99_ratio", "relay_crowded",
        "a quiet room's p99 while a 2,000-member lobby plays, × its own baseline", "×",
        lambda o: o["p99_vs_baseline"], "<=", 2,
    ),
    Figure(
        "relay.password_guessing.p99_ratio", "relay_guessing",
        "a quiet room's p99 while 80 connections guess a password, × its baseline", "×",
        lambda o: o["p99_ratio"], "<=", 2,
    ),
    Figure(
        "relay.churn.drift_pct", "relay_churn", "relay RSS drift over 3 × 3,000 churn cycles", "%",
        lambda o: o["drift_total_pct"], "<=", 5,
    ),
    Figure(
        "capacity.one_room.listeners", "capacity", "one room at 50 notes/s: listeners under 50 ms p99", "",
        lambda o: o["one_room"]["max_listeners_under_50ms_p99"], ">=", 1500,
    ),
    Figure(
        "capacity.node.deliveries_per_s", "capacity", "one node: deliveries/s before p99 passes 50 ms", "/s",
        lambda o: o["targets"]["deliveries_per_s_under_50ms_p99"]["measured"], ">=", 100_000,
    ),
    Figure(
        "capacity.many_rooms.deliveries_per_s", "capacity", "100 rooms × 10 players × 5 notes/s: delivered",
        "/s", lambda o: o["many_rooms"]["sweep"][0]["deliveries_per_s"], ">=", 44_000,
    ),
    Figure(
        "capacity.many_rooms.p99_ms", "capacity", "100 rooms × 10 players × 5 notes/s: p99", "ms",
        lambda o: o["many_rooms"]["sweep"][0]["p99_ms"], "<=", 50,
    ),
]  # fmt: skip


def run_bench(name: str) -> Any:
    script, args, timeout = RUNS[name]
    command = [sys.executable, str(BENCH / script), *args]
    print(f"== {name}: {' '.join(command[1:])} (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return RuntimeError(f"no result within {timeout:.0f} s")
    print(f"   {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        return RuntimeError(f"exit status {done.returncode} (its stderr is above)")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        return RuntimeError(f"its output is not JSON ({exc})")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "")
    return {
        "host": platform.node(),
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "relay_event_loop": relay_event_loop(),
    }


def relay_event_loop() -> str:
    """The loop the relay benchmarks run on: --loop auto's choice (server/main.py), with its version."""
    try:
        return f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        return "asyncio"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + ("-dirty" if dirty else "")


def write_table(measured: list[Measured], date: str, commit: str) -> None:
    causes = tomllib.loads(CAUSES.read_text()) if CAUSES.exists() else {}
    table = render_table(measured, {k: str(v) for k, v in causes.items()}, date, commit)
    README.write_text(replace_table(README.read_text(), table))
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(RUNS), help="run these only")
    parser.add_argument(
        "--table",
        action="store_true",
        help="run nothing: write the table again from results.json (causes edited)",
    )
    args = parser.parse_args()
    if args.table:
        document = json.loads(RESULTS.read_text())
        errors = document.get("errors", {})
        measured = [Measured(f, document["figures"].get(f.name), errors.get(f.name)) for f in FIGURES]
        write_table(measured, document["date"], document["commit"])
        return
    names = args.only or list(RUNS)
    outputs: dict[str, Any] = {}
    loads: dict[str, float] = {}
    for name in names:
        loads[name] = round(os.getloadavg()[0], 2)
        outputs[name] = run_bench(name)
    measured = collect(FIGURES, outputs)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.only and RESULTS.exists():  # keep the last values of the figures not run now
        previous = json.loads(RESULTS.read_text())
        loads = {**previous.get("load_average_at_start", {}), **loads}
        measured = [
            m
            if m.figure.bench in outputs
            else Measured(m.figure, previous["figures"].get(m.figure.name), None)
            for m in measured
        ]
        date = f"{date} (partly: {', '.join(names)}; the rest from {previous['date']})"
    document = results_document(measured, machine(), date, commit(), loads)
    RESULTS.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    write_table(measured, document["date"], document["commit"])
    failed = [name for name, output in outputs.items() if isinstance(output, Exception)]
    if failed:
        raise SystemExit(f"benchmarks failed: {', '.join(failed)} (see above); the table marks their figures")


if __name__ == "__main__":
    main()
