"""Two plain `pianorhythm-tui` windows on one machine (one config dir, one data dir): the second joins the
server the first hosts, both meet in a room and chat, and neither screen shows an error.

Before, each started a server of its own on the same embedded.db: the second overwrote the first's users
and "ERROR server: storage failed" was printed over the first window.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.e2e.headless_procs import REPO
from tests.e2e.test_tmux import Tmux, tmux, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
__all__ = ["tmux"]  # the fixture, used by name


def plain_tui(workdir: Path, name: str) -> str:
    env = {
        "PIANORHYTHM_CONFIG_DIR": str(workdir / "config"),
        # where embedded.db lives (pianorhythm.server.main.default_db_path)
        "XDG_DATA_HOME": str(workdir / "data"),
        "PYTHONPATH": str(REPO),
        "TERM": "xterm-256color",
    }
    args = [sys.executable, "-m", "pianorhythm.tui.cli", "--no-audio", "--name", name]
    assignments = [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    return f"cd {shlex.quote(str(REPO))} && exec env {' '.join(assignments)} {shlex.join(args)}"


def test_a_second_plain_window_joins_the_first_ones_server(tmp_path: Path, tmux: Tmux) -> None:
    tmux.start("ann", plain_tui(tmp_path, "ann"))
    hosting = re.compile(r"hosting (ws://127\.0\.0\.1:\d+/api/websocket)")
    wait_until(lambda: hosting.search(tmux.screen("ann")) is not None, "Ann's window hosting", show=tmux)
    [url] = hosting.findall(tmux.screen("ann"))  # one address, the one the lobby's title shows

    tmux.start("bob", plain_tui(tmp_path, "bob"))
    wait_until(lambda: "Joined the local server already" in tmux.screen("bob"), "Bob's notice", show=tmux)
    wait_until(lambda: url in tmux.screen("bob"), "Bob's lobby titled with Ann's server", show=tmux)

    for session in ("ann", "bob"):
        tmux.keys(session, "duet", literal=True)  # typed on the room list: it goes to the room-name input
        tmux.keys(session, "Enter")

    def in_room_with(session: str, other: str) -> bool:
        screen = tmux.screen(session)
        return "(you)" in screen and re.search(rf"[●◐⊘] (♛ )?{other}\b", screen) is not None

    wait_until(lambda: in_room_with("ann", "bob") and in_room_with("bob", "ann"), "both in duet", show=tmux)
    tmux.keys("ann", "Enter")
    tmux.keys("ann", "hello from the first window", literal=True)
    tmux.keys("ann", "Enter")
    wait_until(
        lambda: "ann: hello from the first window" in tmux.screen("bob"), "Ann's line at Bob's", show=tmux
    )
    for session in ("ann", "bob"):
        screen = tmux.screen(session)
        assert "ERROR" not in screen and "storage failed" not in screen, screen
    assert len(list((tmp_path / "data").rglob("*.db"))) == 1
