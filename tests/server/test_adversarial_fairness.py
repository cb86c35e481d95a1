"""Fair rooms: a lobby of 2,000 members with one of them playing at its note limit leaves a quiet room's
note p99 under 2x its baseline (+3 ms).

The crowd is a separate process (bench/_crowd.py: lean clients from 127.0.1.x, waiting for their Welcome
only), so this test process only runs the probe. The baseline is measured before the crowd arrives. The
machine is shared (2 cores, other jobs), so a neighbour's burst can spoil any one 5 s window: the loaded
window is tried up to three times, each time right after a fresh baseline with the player stopped, and
the figure must hold in one of them; notes must never be lost in any.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.fixtures.relay_process import Latency, note_latency, relay_process

CROWD = Path(__file__).resolve().parents[2] / "bench" / "_crowd.py"
MEMBERS = 2000
TRIES = 3
# A p99 of 100 notes is about their largest: on a ~1 ms baseline a few scheduler hiccups of the shared
# machine move it by milliseconds (in full-suite runs the loaded p99 came to 3.4-4.8 ms on a 0.95-1.12 ms
# baseline, p50 unchanged; alone, 0.9-3.1 ms). Unfair fan-out costs tens of ms (86 ms measured without the
# room budget). The password-guessing test allows the same 3 ms; bench/ holds the figure (1.4x baseline).
SLACK_MS = 3.0


def _held(baseline: Latency, loaded: Latency) -> bool:
    return loaded.p99_ms < 2 * baseline.p99_ms + SLACK_MS


async def _command(crowd: asyncio.subprocess.Process, command: str, timeout: float = 10) -> None:
    assert crowd.stdin is not None and crowd.stdout is not None
    crowd.stdin.write(command.encode() + b"\n")
    await crowd.stdin.drain()
    line = await asyncio.wait_for(crowd.stdout.readline(), timeout)
    assert line.decode().strip() == command, f"the crowd answered {line!r} to {command!r}"


@pytest.mark.slow
async def test_a_crowded_lobby_at_quota_keeps_a_quiet_rooms_p99_under_twice_its_baseline(
    tmp_path: Path,
) -> None:
    """Figure: quiet room note p99 (20 notes/s, 100 notes) < 2x baseline + 3 ms, 0 lost, with 2,000 lobby
    members and one of them sending 200 note batches/s (the lobby gets the shared budget, 2,000
    deliveries/s, while the quiet room plays)."""
    async with relay_process(tmp_path) as server:
        baseline = await note_latency(server.url, room="quiet", seconds=5, rate=20)
        crowd = await asyncio.create_subprocess_exec(
            sys.executable, str(CROWD), server.url, str(MEMBERS), "--play", "200",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert crowd.stdout is not None and crowd.stdin is not None
        try:
            ready = await asyncio.wait_for(crowd.stdout.readline(), 180)
            assert ready == b"ready\n", f"the crowd did not get in: {ready!r}"
            tries: list[tuple[Latency, Latency]] = []
            for attempt in range(TRIES):
                if attempt:
                    await _command(crowd, "stop")
                    baseline = await note_latency(server.url, room="quiet", seconds=5, rate=20)
                await _command(crowd, "play")
                await asyncio.sleep(1.0)
                loaded = await note_latency(server.url, room="quiet", seconds=5, rate=20)
                tries.append((baseline, loaded))
                if _held(baseline, loaded):
                    break
            crowd.stdin.close()
            report = json.loads(await asyncio.wait_for(crowd.stdout.readline(), 30))
        finally:
            if crowd.returncode is None:
                crowd.kill()
            await crowd.wait()
    figures = [(b.as_dict(), lo.as_dict()) for b, lo in tries]
    print(json.dumps({"baseline_then_loaded": figures, "crowd": report}))
    assert all(b.lost == 0 and lo.lost == 0 for b, lo in tries), figures
    assert any(_held(b, lo) for b, lo in tries), figures
    # The player really was over what the lobby may fan out, and the lobby still heard some of it.
    assert report["player_errors"].get("ERROR_CODE_RATE_LIMITED", 0) >= 1, report
    assert report["frames_received"] > MEMBERS, report
    assert not server.logged(r"too slow"), "a reading crowd member was closed as slow"
