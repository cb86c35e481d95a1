"""Key press and release from the terminal: the kitty keyboard protocol, where the terminal speaks it.

Terminals normally report key presses only; the kitty protocol (kitty, WezTerm, foot, Ghostty, recent
Alacritty...) reports press, repeat and release once the application pushes the "report event types" flag
(https://sw.kovidgoyal.net/kitty/keyboard-protocol/). Textual 8 already pushes flags 1|8|16 at start and
parses presses, but has no release event (Textualize/textual#6417): a release sequence (`CSI 122;1:3u`)
would reach its parser and fail, and the replies to our queries would be typed as keys. So it is all here:

- `KittyFilter` (pure): splits terminal input into text for Textual's parser (presses and repeats normalised
  to plain presses) and what Textual must not see: releases, the `CSI ? flags u` reply, the DA1 reply.
- `KeyboardInput`: the mode (`auto` detects, `press-release` / `fixed` override) and the push/pop of the
  event-type flags, asked for by the room while the keyboard roll has focus.
- `KittyDriver`: Textual's Linux driver (the public `App(driver_class=...)` hook) sending the queries at
  start,
  running the filter before Textual's parser, popping our flags on stop (exit and suspend) and pushing them
  again on resume. It copies `LinuxDriver.run_input_thread` (internal): `driver_class_for` gates it to
  Textual 8.2 (else Textual's driver and fixed notes), tests/tui/test_keys_kitty.py fails when the gate is
  off and tests/e2e/test_pty_keys.py drives it in a real pseudo-terminal.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import selectors
import sys
from codecs import getincrementaldecoder
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from textual import constants
from textual.message import Message

if TYPE_CHECKING:
    from textual.driver import Driver

log = logging.getLogger(__name__)

KeysMode = Literal["auto", "press-release", "fixed"]
KEYS_MODES: Final[tuple[KeysMode, ...]] = ("auto", "press-release", "fixed")

QUERY: Final = "\x1b[?u\x1b[c"  # the flags query, then DA1: every terminal answers DA1, kitty ones first `?u`
# Textual's own flags (1|8|16) plus 2, report event types: press, repeat, release.
PUSH: Final = "\x1b[>27u"
POP: Final = "\x1b[<u"
TEXTUAL_TESTED: Final = "8.2."  # KittyDriver.run_input_thread copies this version's LinuxDriver loop

_CSI_PARTIAL = re.compile(r"\x1b\[[\d;:?]*\Z")
_CSI = re.compile(r"\x1b\[([\d;:?]*)([A-Za-z~])")
_KEY_PARAMS = re.compile(r"(\d+)(?::[\d:]*)?(?:;(\d*)(?::(\d))?)?(?:;([\d:]*))?")
KEY_FINALS: Final = "u~ABCDEFHPQRS"  # text keys end in u; arrows, F1-F4, Home, End... in the others
RELEASE: Final = 3  # the event types: 1 press, 2 repeat, 3 release


@dataclass(frozen=True, slots=True)
class Release:
    """A key released: `code` is the kitty key code (the unshifted key's code point for text keys)."""

    code: int

    @property
    def character(self) -> str:
        return chr(self.code)


@dataclass(frozen=True, slots=True)
class FlagsReply:
    """The terminal answered `CSI ? u`: it speaks the protocol, with these flags on now."""

    flags: int


@dataclass(frozen=True, slots=True)
class DeviceAttributes:
    """The DA1 reply: every terminal sends it, so it ends the detection."""


Item = str | Release | FlagsReply | DeviceAttributes


def _key_event(params: str, final: str) -> tuple[str, int] | None:
    """(the plain press sequence for Textual, event type) for a kitty key sequence with an event type, or
    None when it has none (Textual parses it as it is)."""
    match = _KEY_PARAMS.fullmatch(params)
    if match is None or match.group(3) is None:
        return None
    code, mods, event, text = match.groups()
    fields = [code]
    if mods not in ("", "1") or text:
        fields.append(mods)
    if text:
        fields.append(text)
    if final != "u" and fields == ["1"]:
        fields = []  # `CSI 1;1:2A`: an arrow with no modifier is plain `CSI A`
    return "\x1b[" + ";".join(fields) + final, int(event)


class KittyFilter:
    """Terminal input in, `Item`s out (pure: no I/O). A sequence cut at the end of a chunk is held until the
    next chunk or `flush`."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, data: str) -> list[Item]:
        data = self._held + data
        self._held = ""
        items: list[Item] = []
        text_start = 0
        pos = data.find("\x1b[")
        while pos != -1:
            match = _CSI.match(data, pos)
            if match is None:
                if _CSI_PARTIAL.match(data, pos):
                    self._held = data[pos:]
                    data = data[:pos]
                break
            params, final = match.groups()
            item: Item | None = None
            if params.startswith("?") and final == "u" and params[1:].isdigit():
                item = FlagsReply(int(params[1:]))
            elif params.startswith("?") and final == "c":
                item = DeviceAttributes()
            elif final in KEY_FINALS and (key := _key_event(params, final)) is not None:
                sequence, event = key
                if event != RELEASE:
                    item = sequence
                elif final == "u":
                    item = Release(int(params.split(";")[0].split(":")[0]))
                else:
                    item = ""  # an arrow or function key let go: nothing holds on it
            if item is not None:
                if pos > text_start:
                    items.append(data[text_start:pos])
                items.append(item)
                text_start = match.end()
            pos = data.find("\x1b[", match.end())
        if text_start < len(data):
            items.append(data[text_start:])
        return _joined(items)

    def flush(self) -> list[Item]:
        """What was held back, as text (nothing more came: it was not one of ours)."""
        held, self._held = self._held, ""
        return [held] if held else []


def _joined(items: list[Item]) -> list[Item]:
    out: list[Item] = []
    for item in items:
        if item == "":
            continue
        if isinstance(item, str) and out and isinstance(out[-1], str):
            out[-1] += item
        else:
            out.append(item)
    return out


class KeyReleased(Message, bubble=False):  # or it would come back up to the app, which hands it down again
    """A key was released (press-release mode); the app hands it to the focused widget."""

    def __init__(self, character: str) -> None:
        super().__init__()
        self.character = character


class KeyboardDetected(Message):
    """The terminal answered the start query: it speaks the kitty protocol or not."""

    def __init__(self, supported: bool) -> None:
        super().__init__()
        self.supported = supported


class KeyboardInput:
    """The keys mode and the flags pushed on the terminal. The room calls `want_events`; the driver calls
    `attach` / `detach` when application mode starts and stops (start, suspend, resume, exit). All of them run
    on the app's thread (Textual's SIGTSTP/SIGCONT handlers too), so there is no lock: a signal handler
    taking one the interrupted code holds would deadlock."""

    def __init__(self, setting: str = "auto") -> None:
        if setting not in KEYS_MODES:
            log.warning("keys setting %r unknown; using auto", setting)
            setting = "auto"
        self.setting = setting
        self.supported: bool | None = None  # None: not known (no answer yet, or no terminal)
        self.wanted = False
        self.pushed = False
        self._write: Driver | None = None

    @property
    def press_release(self) -> bool:
        """Whether a held key is a held note."""
        if self.setting == "auto":
            return bool(self.supported) and self._write is not None
        return self.setting == "press-release" and self._write is not None

    @property
    def label(self) -> str:
        """For the status bar."""
        return "keys held" if self.press_release else "keys fixed"

    def attach(self, driver: Driver) -> None:
        self._write = driver
        if self.wanted and self.press_release and not self.pushed:
            self._send(PUSH)

    def detach(self) -> None:
        """Application mode stops (exit or suspend): pop ours; `attach` pushes again on resume."""
        if self.pushed:
            self._send(POP)
        self._write = None

    def want_events(self, want: bool) -> None:
        """Push the event-type flags (the keyboard roll has focus) or pop them (anything else)."""
        self.wanted = want
        if want and self.press_release and not self.pushed:
            self._send(PUSH)
        elif not want and self.pushed:
            self._send(POP)

    def _send(self, sequence: str) -> None:
        assert self._write is not None
        self._write.write(sequence)
        self._write.flush()
        self.pushed = sequence == PUSH


def driver_class_for(keyboard: KeyboardInput) -> type[Driver] | None:
    """Our driver bound to `keyboard`, or None where it does not apply (another Textual than the one its input
    loop copies, not a POSIX terminal, or Textual's kitty support turned off): Textual's own driver and
    fixed-length notes then."""
    version = importlib.metadata.version("textual")
    if sys.platform == "win32" or constants.DISABLE_KITTY_KEY:
        return None
    if not version.startswith(TEXTUAL_TESTED):
        log.warning("textual %s: key release is written for Textual %s; keys fixed", version, TEXTUAL_TESTED)
        return None
    from textual.drivers import linux_driver

    class KittyDriver(linux_driver.LinuxDriver):
        def start_application_mode(self) -> None:
            super().start_application_mode()  # type: ignore[no-untyped-call]
            if self._writer_thread is None:  # could not take the terminal (backgrounded)
                return
            if keyboard.supported is None:
                self.write(QUERY)
                self.flush()
            keyboard.attach(self)

        def stop_application_mode(self) -> None:
            keyboard.detach()
            super().stop_application_mode()

        def run_input_thread(self) -> None:
            """LinuxDriver.run_input_thread (Textual 8.2) with `KittyFilter` before Textual's parser."""
            selector = selectors.SelectSelector()
            selector.register(self.fileno, selectors.EVENT_READ)
            # The stock driver's parser: internal, hence the TEXTUAL_TESTED gate.
            parser = linux_driver.XTermParser(self._debug)  # type: ignore[attr-defined]
            kitty = KittyFilter()
            decode = getincrementaldecoder("utf-8")().decode

            def handle(items: list[Item]) -> None:
                for item in items:
                    if isinstance(item, str):
                        for event in parser.feed(item):
                            self.process_message(event)
                    elif isinstance(item, Release):
                        self.process_message(KeyReleased(item.character))
                    elif keyboard.supported is None:  # the first of the two replies decides
                        keyboard.supported = isinstance(item, FlagsReply)
                        log.info("kitty keyboard protocol %s", "on" if keyboard.supported else "absent")
                        self.process_message(KeyboardDetected(keyboard.supported))

            def process(ready: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
                for index, (_key, mask) in enumerate(ready):
                    if mask & selectors.EVENT_READ:
                        last = index == len(ready) - 1
                        data = decode(os.read(self.fileno, 1024 * 4), final=final and last)
                        if not data:
                            break
                        handle(kitty.feed(data))
                if not ready:
                    handle(kitty.flush())
                for event in parser.tick():
                    self.process_message(event)

            try:
                while not self.exit_event.is_set():
                    process(selector.select(0.1))
                selector.unregister(self.fileno)
                process(selector.select(0.1), final=True)
            finally:
                selector.close()

    return KittyDriver
