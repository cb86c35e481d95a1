"""End to end in real terminals: a `--server` process, two TUIs in tmux and a `--headless` bot.

Ann types in her chat input: Bob's players list shows "typing…" first, then the line itself in his chat.
The bot plays a MIDI file into the room: keys light in the bot's colour on Bob's keyboard (seen in the
escape sequences tmux captures). Everything runs as the user would run it; every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.headless_procs import DATA, REPO, Proc, headless, start_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

BOT_COLOR = (0, 255, 255)  # the bot's colour, "#00ffff": looked for in Bob's keyboard


class Tmux:
    """One private tmux server (its own socket) holding a session per TUI."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name]
        self.sessions: list[str] = []

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)
        if done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, session: str, command: str) -> None:
        self.run("new-session", "-d", "-s", session, "-x", "100", "-y", "30", command)
        self.sessions.append(session)

    def screen(self, session: str, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", session)

    def keys(self, session: str, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", session, *(["-l"] if literal else []), *keys)

    def kill(self) -> None:
        """Stop the tmux server (and so the TUIs in it) and remove its socket file."""
        found = subprocess.run(
            [*self.base, "display-message", "-p", "#{socket_path}"], capture_output=True, text=True
        )
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=10)
        if found.returncode == 0 and found.stdout.strip():
            Path(found.stdout.strip()).unlink(missing_ok=True)


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 15.0, show: Tmux | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            screens = "" if show is None else "\n".join(f"--- {s}\n{show.screen(s)}" for s in show.sessions)
            raise AssertionError(f"timed out waiting for {what}\n{screens}")
        time.sleep(0.1)


def tui_command(workdir: Path, url: str, name: str) -> str:
    env = {
        "PIANORHYTHM_CONFIG_DIR": str(workdir / f"cfg-{name}"),
        "PYTHONPATH": str(REPO),
        "COLORTERM": "truecolor",  # Textual then sends 24-bit colours, which tmux keeps
        "TERM": "xterm-256color",
    }
    args = [sys.executable, "-m", "pianorhythm.tui.cli", "--no-audio", "--connect", url]
    args += ["--room", "e2e", "--name", name]
    assignments = [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    return f"cd {shlex.quote(str(REPO))} && exec env {' '.join(assignments)} {shlex.join(args)}"


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    mux = Tmux(f"pr-e2e-{os.getpid()}-{tmp_path.name}")
    try:
        yield mux
    finally:
        mux.kill()


def lit_in_keyboard(tmux: Tmux, session: str, rgb: tuple[int, int, int]) -> bool:
    """Whether a cell of the roll or the keyboard (the lines above the chat) is drawn in `rgb`.

    The players list shows names in their colour too, so only the lines above the chat panel count.
    """
    plain = tmux.screen(session).splitlines()
    escaped = tmux.screen(session, escapes=True).splitlines()
    bottom = next((i for i, line in enumerate(plain) if "│" in line), len(plain))
    r, g, b = rgb
    colour = re.compile(rf"\x1b\[[0-9;]*[34]8;2;{r};{g};{b}[;m]")
    return any(colour.search(line) for line in escaped[1:bottom])


def test_chat_typing_and_notes_between_real_tuis(tmp_path: Path, tmux: Tmux) -> None:
    procs: list[Proc] = []
    try:
        server, url = start_server(tmp_path)
        procs.append(server)
        tmux.start("ann", tui_command(tmp_path, url, "ann"))
        tmux.start("bob", tui_command(tmp_path, url, "bob"))

        def in_room_with(session: str, other: str) -> bool:
            screen = tmux.screen(session)
            return "(you)" in screen and re.search(rf"[●◐⊘] (♛ )?{other}\b", screen) is not None

        wait_until(
            lambda: in_room_with("ann", "bob") and in_room_with("bob", "ann"),
            "both TUIs in the room",
            show=tmux,
        )

        # Ann types: Bob sees her typing before the message arrives.
        tmux.keys("ann", "Enter")  # the chat input takes the keys at once
        tmux.keys("ann", "hello from ann", literal=True)
        wait_until(lambda: "hello from ann" in tmux.screen("ann"), "the text in Ann's input", show=tmux)
        wait_until(
            lambda: re.search(r"ann typing…", tmux.screen("bob")) is not None,
            "the typing indicator",
            show=tmux,
        )
        assert "hello from ann" not in tmux.screen("bob")
        tmux.keys("ann", "Enter")
        wait_until(
            lambda: "ann: hello from ann" in tmux.screen("bob"), "the chat line on Bob's screen", show=tmux
        )
        wait_until(lambda: "typing…" not in tmux.screen("bob"), "the typing indicator to clear", show=tmux)

        # A headless bot plays a file into the room: keys light in its colour on Bob's keyboard.
        assert not lit_in_keyboard(tmux, "bob", BOT_COLOR)
        bot = headless(
            tmp_path,
            url,
            "bot",
            "--room",
            "e2e",
            "--color",
            "#00ffff",
            "--play",
            str(DATA / "m21-test02.mid"),
        )
        procs.append(bot)
        wait_until(lambda: "bot" in tmux.screen("bob"), "the bot in Bob's players list", show=tmux)
        wait_until(
            lambda: lit_in_keyboard(tmux, "bob", BOT_COLOR), "a key lit in the bot's colour", show=tmux
        )
    finally:
        tmux.kill()
        for proc in reversed(procs):
            proc.kill()
