"""End to end: the TUI in a pseudo-terminal that speaks the kitty keyboard protocol (issue 12 item 1).

The test is the terminal: it answers the `CSI ? u` query (then DA1), records every push and pop of the
keyboard flags, and types press / repeat / release sequences the way kitty does once the event-type flag is
pushed. A headless listener in the room records what the TUI plays. tmux does not speak the protocol, so
this needs a pty of our own.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pianorhythm.tui.midi.fileplayer import read_midi_file
from tests.e2e.headless_procs import REPO, Proc, headless, start_server

pytestmark = pytest.mark.slow

QUERY = "\x1b[?u"
PUSH = "\x1b[>"
POP = "\x1b[<u"


class KittyTerminal:
    """A pty running the TUI; answers the kitty query when `speaks_kitty`, and tracks the flags stack."""

    def __init__(self, args: list[str], env: dict[str, str], speaks_kitty: bool = True) -> None:
        self.speaks_kitty = speaks_kitty
        self.output = ""
        self.flags: list[int] = []  # the terminal's stack of pushed flags
        self._lock = threading.Lock()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the TUI
            os.chdir(REPO)
            os.execve(sys.executable, [sys.executable, "-m", "pianorhythm.tui.cli", *args], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        pending = ""
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536).decode(errors="replace")
            except OSError:  # the child has gone
                return
            if not data:
                return
            with self._lock:
                self.output += data
            pending += data
            while True:  # a terminal acts on the sequences in order
                cut = min((i for i in (pending.find(QUERY), pending.find(PUSH), pending.find(POP)) if i >= 0),
                          default=-1)  # fmt: skip
                if cut < 0:
                    pending = pending[-8:]
                    break
                rest = pending[cut:]
                if rest.startswith(QUERY):
                    # Kitty answers with its current flags, then DA1 as every terminal does.
                    reply = f"\x1b[?{self.flags[-1] if self.flags else 0}u" if self.speaks_kitty else ""
                    self.write(reply + "\x1b[?62;22c")
                    pending = rest[len(QUERY) :]
                elif rest.startswith(POP):
                    if self.flags:
                        self.flags.pop()
                    pending = rest[len(POP) :]
                else:
                    end = rest.find("u")
                    if end < 0:
                        break
                    self.flags.append(int(rest[3:end]))
                    pending = rest[end + 1 :]

    def write(self, data: str) -> None:
        os.write(self.fd, data.encode())

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} on the terminal:\n{self.output[-3000:]!r}")
            time.sleep(0.05)

    def key(self, code: int, event: int = 1, mods: int = 1) -> None:
        """What kitty sends for a key once flags 1|2|8 are on (press omits the event type)."""
        self.write(f"\x1b[{code}u" if event == 1 and mods == 1 else f"\x1b[{code};{mods}:{event}u")

    def wait_exit(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reader.join(2)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError(f"the TUI did not exit:\n{self.output[-3000:]!r}")


def wait_until(done: Callable[[], bool], what: str, term: KittyTerminal, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited for {what}; flags {term.flags}:\n{term.output[-2000:]!r}")
        time.sleep(0.05)


def tui_env(workdir: Path) -> dict[str, str]:
    return {**os.environ, "PIANORHYTHM_CONFIG_DIR": str(workdir / "cfg-ann"), "TERM": "xterm-kitty"}


def notes(recording: Path) -> list[tuple[int, float]]:
    """(key, seconds held) of each note in the recording, in order of the note on."""
    held: dict[int, float] = {}
    out: list[tuple[int, float, float]] = []
    for timed in read_midi_file(recording).events:
        event = timed.event
        if event.is_note_on:
            held[event.number] = timed.seconds
        elif event.number in held and event.kind.name == "NOTE":
            start = held.pop(event.number)
            out.append((event.number, start, timed.seconds - start))
    return [(key, length) for key, _, length in sorted(out, key=lambda n: n[1])]


def test_held_keys_are_held_notes_and_chat_is_text(tmp_path: Path) -> None:
    recording = tmp_path / "heard.mid"
    procs: list[Proc] = []
    term: KittyTerminal | None = None
    try:
        server, url = start_server(tmp_path)
        procs.append(server)
        bob = headless(tmp_path, url, "bob", "--room", "e2e", "--record", str(recording))
        procs.append(bob)
        bob.wait_for("joined|room", timeout=20)
        args = ["--no-audio", "--connect", url, "--room", "e2e", "--name", "ann"]
        term = KittyTerminal(args, tui_env(tmp_path))
        term.wait_for("keys held")  # detected; the roll has focus
        assert term.flags[-1] == 27  # Textual's 1|8|16, and ours: 2, report event types
        time.sleep(1.0)

        term.key(122)  # z: C3, held 0.8 s with auto-repeat
        for _ in range(8):
            time.sleep(0.1)
            term.key(122, event=2)
        term.key(122, event=3)
        time.sleep(0.5)

        for code in (122, 99, 98):  # z c b: a C major chord, held 1 s
            term.key(code)
        time.sleep(1.0)
        for code in (99, 122, 98):
            term.key(code, event=3)
        time.sleep(0.5)

        term.write("\x1b[C")  # the octave keys work (and their repeat and release reach no parser that fails)
        term.write("\x1b[1;1:2C\x1b[1;1:3C\x1b[D\x1b[1;1:3D")
        term.wait_for("C4 v96")
        time.sleep(0.3)

        term.key(13)  # Enter: to the chat, where typing is text (Textual's own flags again)
        time.sleep(0.5)
        assert term.flags == [25]
        for letter in "hello":
            term.key(ord(letter))
        term.key(13)  # sends, and the roll has focus again
        bob.wait_for("chat ann: hello")
        time.sleep(0.5)
        assert term.flags[-1] == 27

        os.kill(term.pid, signal.SIGTSTP)  # Ctrl+Z in a shell: the terminal as it was while suspended
        wait_until(lambda: term.flags == [], "the flags popped on suspend", term)
        os.kill(term.pid, signal.SIGCONT)
        wait_until(lambda: term.flags == [25, 27], "the flags pushed again on resume", term)

        term.key(113, mods=5)  # Ctrl+Q
        assert term.wait_exit() == 0
        assert term.flags == []  # every push popped: the terminal is left as it was
        assert term.output.count(PUSH) == term.output.count(POP) >= 3
        time.sleep(1.0)
        bob.interrupt()
    finally:
        if term is not None and term.pid:
            try:
                os.kill(term.pid, 9)
                os.waitpid(term.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for proc in reversed(procs):
            proc.kill()

    played = notes(recording)
    # The held C, then the chord (its three notes in any order); hello played nothing.
    assert played[0][0] == 48 and sorted(key for key, _ in played[1:]) == [48, 52, 55], played
    assert abs(played[0][1] - 0.8) < 0.15, played
    assert all(abs(length - 1.0) < 0.15 for _, length in played[1:]), played


def test_a_terminal_without_the_protocol_keeps_fixed_length_notes(tmp_path: Path) -> None:
    recording = tmp_path / "heard.mid"
    procs: list[Proc] = []
    term: KittyTerminal | None = None
    try:
        server, url = start_server(tmp_path)
        procs.append(server)
        bob = headless(tmp_path, url, "bob", "--room", "e2e", "--record", str(recording))
        procs.append(bob)
        bob.wait_for("joined|room", timeout=20)
        args = ["--no-audio", "--connect", url, "--room", "e2e", "--name", "ann"]
        term = KittyTerminal(args, tui_env(tmp_path), speaks_kitty=False)
        term.wait_for("keys fixed")
        time.sleep(1.0)
        assert term.flags == [25]  # Textual's own only: nothing of ours pushed
        term.write("z")  # a terminal without the protocol sends the character
        time.sleep(1.0)
        term.key(113, mods=5)
        assert term.wait_exit() == 0
        assert term.flags == []
        time.sleep(1.0)
        bob.interrupt()
    finally:
        if term is not None and term.pid:
            try:
                os.kill(term.pid, 9)
                os.waitpid(term.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for proc in reversed(procs):
            proc.kill()

    played = notes(recording)
    assert [key for key, _ in played] == [48], played
    assert abs(played[0][1] - 0.3) < 0.1, played  # the fixed length (note_length_s)
