"""Real TUIs in tmux log to their file, never over the screen: one at --log-level debug writes its file
while the server it plays on dies under it; one whose log folder cannot be created says so in a toast and
plays on. Every byte either TUI writes to its terminal is recorded (tmux pipe-pane): no log line is among
them. (A capture of the screen alone would miss one: Textual paints over it at its next frame.)
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.headless_procs import REPO, Proc, start_server
from tests.e2e.test_tmux import Tmux, tmux, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
__all__ = ["tmux"]  # the fixture, used by name

LOG_LINE = re.compile(r"\d\d:\d\d:\d\d,\d{3} (?:DEBUG|INFO|WARNING|ERROR) [^\x1b\n]*")


def tui(workdir: Path, url: str, name: str, log_dir: Path) -> str:
    env = {
        "PIANORHYTHM_CONFIG_DIR": str(workdir / f"cfg-{name}"),
        "PIANORHYTHM_LOG_DIR": str(log_dir),
        "PYTHONPATH": str(REPO),
        "TERM": "xterm-256color",
    }
    args = [sys.executable, "-m", "pianorhythm.tui.cli", "--no-audio", "--connect", url, "--name", name]
    args += ["--room", "logs", "--log-level", "debug"]
    assignments = [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    # The pause lets pipe-pane start recording before the TUI writes its first byte.
    return f"sleep 1; cd {shlex.quote(str(REPO))} && exec env {' '.join(assignments)} {shlex.join(args)}"


def sessions_left(tmux: Tmux) -> bool:
    try:
        return bool(tmux.run("list-sessions").strip())
    except RuntimeError:  # the tmux server ends with its last session
        return False


def test_logs_go_to_the_file_and_never_over_the_screen(tmp_path: Path, tmux: Tmux) -> None:
    log_file = tmp_path / "logs" / "pianorhythm-tui.log"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where bob's log folder should be")
    server: Proc | None = None
    try:
        server, url = start_server(tmp_path)
        for name, log_dir in (("ann", log_file.parent), ("bob", blocker / "logs")):
            tmux.start(name, tui(tmp_path, url, name, log_dir))
            tmux.run("pipe-pane", "-t", name, "-o", f"cat >> {shlex.quote(str(tmp_path / name))}.tty")

        def written() -> str:
            return "".join((tmp_path / f"{name}.tty").read_text(errors="replace") for name in ("ann", "bob"))

        wait_until(lambda: "(you)" in tmux.screen("ann"), "ann in the room", show=tmux)
        wait_until(lambda: "(you)" in tmux.screen("bob"), "bob in the room", show=tmux)
        wait_until(lambda: "No log file this run" in tmux.screen("bob"), "bob's toast", show=tmux)
        wait_until(lambda: " DEBUG " in log_file.read_text(), "debug lines in ann's log file", show=tmux)

        server.kill()  # both clients log the lost connection while they draw "reconnecting"
        lost = f"INFO pianorhythm.tui.net.session: connection to {url} lost or failed"
        wait_until(lambda: lost in log_file.read_text(), "the lost connection in ann's log", show=tmux)
        wait_until(lambda: "Connection lost" in tmux.screen("bob"), "bob's reconnecting toast", show=tmux)
        tmux.keys("ann", "C-q")
        tmux.keys("bob", "C-q")
        wait_until(lambda: not sessions_left(tmux), "both TUIs to quit")
        assert "rtt" in written()  # the recording holds what the TUIs drew...
        assert LOG_LINE.findall(written()) == []  # ...and no log line
    finally:
        tmux.kill()
        if server is not None:
            server.kill()
