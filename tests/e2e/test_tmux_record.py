"""End to end: a real TUI in tmux with --record hears a headless player's file, then quits and writes it.

The TUI runs as a user would run it (a `--server` process, `--connect`, `--room`); after Ctrl+Q the shell
in the pane shows where the recording went, and the .mid holds the player's track with every note of
the file, in order, and no track for the TUI's own silent user.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from pianorhythm.tui.midi.fileplayer import read_midi_file
from tests.e2e.headless_procs import DATA, REPO, Proc, headless, start_server
from tests.e2e.test_tmux import Tmux, tmux, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

__all__ = ["tmux"]  # the fixture, used by name

SONG = DATA / "m21-test02.mid"  # 18.5 s, 163 notes


def recording_tui(workdir: Path, url: str, recording: Path) -> str:
    """The TUI, then the shell reporting its exit status (the pane stays, so its last words can be read)."""
    env = {
        "PIANORHYTHM_CONFIG_DIR": str(workdir / "cfg-ann"),
        "PYTHONPATH": str(REPO),
        "TERM": "xterm-256color",
    }
    args = [sys.executable, "-m", "pianorhythm.tui.cli", "--no-audio", "--connect", url]
    args += ["--room", "e2e", "--name", "ann", "--record", str(recording)]
    assignments = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"cd {shlex.quote(str(REPO))} && env {assignments} {shlex.join(args)}; echo tui-exit=$?; sleep 60"


def test_a_tui_records_a_headless_player(tmp_path: Path, tmux: Tmux) -> None:
    recording = tmp_path / "heard.mid"
    procs: list[Proc] = []
    try:
        server, url = start_server(tmp_path)
        procs.append(server)
        tmux.start("ann", recording_tui(tmp_path, url, recording))
        wait_until(lambda: "(you)" in tmux.screen("ann"), "the TUI in the room", show=tmux)

        player = headless(tmp_path, url, "player", "--room", "e2e", "--play", str(SONG), "--exit-after-play")
        procs.append(player)
        wait_until(lambda: "player" in tmux.screen("ann"), "the player in ann's list", show=tmux)
        assert player.wait(60) == 0, player.stderr
        assert "played " in player.stdout

        tmux.keys("ann", "C-q")
        wait_until(lambda: "tui-exit=" in tmux.screen("ann"), "the TUI to quit", show=tmux)
        screen = tmux.screen("ann")
        assert "tui-exit=0" in screen, screen
        assert f"Recorded 326 events to {recording}." in "".join(screen.splitlines()), screen  # maybe wrapped
    finally:
        tmux.kill()
        for proc in reversed(procs):
            proc.kill()

    data = read_midi_file(recording)
    assert data.track_names[1:] == ["player"]  # ann played nothing: no track of hers
    want = [(t.event.number, t.event.value) for t in read_midi_file(SONG).events if t.event.is_note_on]
    got = [(t.event.number, t.event.value) for t in data.events if t.event.is_note_on]
    assert len(got) == 163 and got == want
