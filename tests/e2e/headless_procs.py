"""Helpers for end-to-end tests with real processes: a --server process and --headless clients."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from pianorhythm.tui.midi.fileplayer import read_midi_file

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
CLI = [sys.executable, "-m", "pianorhythm.tui.cli"]


class Proc:
    """A child process whose stdout and stderr go to files we can poll."""

    def __init__(self, args: list[str], workdir: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(CLI + args, cwd=REPO, stdout=self._out, stderr=self._err, env=full_env)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(
        self, pattern: str, timeout: float = 15.0, stream: str = "stdout", after: int = 0
    ) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            text = (self.stdout if stream == "stdout" else self.stderr)[after:]
            match = re.search(pattern, text, re.MULTILINE)
            if match:
                return match
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"no {pattern!r} in {stream} (exit {self.popen.poll()}):\n{self.stdout}\n{self.stderr}"
                )
            time.sleep(0.05)

    def interrupt(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        finally:
            self._out.close()
            self._err.close()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        self._out.close()
        self._err.close()


def start_server(workdir: Path, port: int = 0, name: str = "server") -> tuple[Proc, str]:
    """A `pianorhythm-tui --server` process; returns it and its WebSocket URL (from its log line)."""
    proc = Proc(["--server", "--port", str(port), "--db", str(workdir / "server.db")], workdir, name)
    match = proc.wait_for(r"listening on (ws://\S+)", stream="stderr")
    return proc, match.group(1)


def headless(workdir: Path, url: str, name: str, *extra: str, env: dict[str, str] | None = None) -> Proc:
    args = ["--headless", "--connect", url, "--name", name, "--no-audio", *extra]
    return Proc(
        args, workdir, name, env={"PIANORHYTHM_CONFIG_DIR": str(workdir / f"cfg-{name}"), **(env or {})}
    )


def note_ons(path: Path) -> list[tuple[float, int, int]]:
    """A MIDI file's note-ons: (seconds, key, velocity), in order."""
    return [
        (t.seconds, t.event.number, t.event.value) for t in read_midi_file(path).events if t.event.is_note_on
    ]


def stuck_notes(path: Path) -> int:
    """Note-ons in a recording with no note-off (0 when every note that went down came up again)."""
    events = read_midi_file(path).events
    return sum(1 for t in events if t.event.is_note_on) - sum(1 for t in events if t.event.is_note_off)


def ioi_errors(got: list[tuple[float, int, int]], want: list[tuple[float, int, int]]) -> list[float]:
    """How far each interval between consecutive note-ons in `got` is from the same interval in `want`
    (seconds), sorted."""
    return sorted(
        abs((g1[0] - g0[0]) - (w1[0] - w0[0]))
        for g0, g1, w0, w1 in zip(got, got[1:], want, want[1:], strict=False)
    )


def p99(sorted_values: list[float]) -> float:
    return sorted_values[int(0.99 * (len(sorted_values) - 1))]
