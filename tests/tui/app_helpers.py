"""Helpers for the app tests: an app on a real relay server with a temporary config dir."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from textual.screen import Screen
from textual.widget import Widget

from pianorhythm.tui.app import PianoApp, options_from_args
from pianorhythm.tui.cli import build_parser

S = TypeVar("S", bound=Screen[Any])


def make_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["--no-audio", *argv])


def make_app(config_dir: Path, *argv: str, starter: Any = None) -> PianoApp:
    args = make_args(*argv)
    options = options_from_args(args, config_dir / "config.toml")
    return PianoApp(options, starter)


async def wait_for(pilot: Any, condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Let the app run until `condition()` is true (fails after `timeout` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.02)


def current_screen(app: PianoApp, kind: type[S]) -> S:
    """`app.screen`, checked to be a `kind`. Read through a call, so mypy keeps no narrowing of `app.screen`
    from before an await that switched screens."""
    screen = app.screen
    assert isinstance(screen, kind), screen
    return screen


def focused(screen: Screen[Any]) -> Widget | None:
    """`screen.focused`, read through a call for the same reason as `current_screen`."""
    return screen.focused


class RecordingTerminal:
    """Stands in for the terminal (or a driver's output): keeps every write, for the key-mode tests."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def write(self, data: str) -> None:
        self.out.append(data)

    def flush(self) -> None:
        pass
