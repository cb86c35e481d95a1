"""Helpers for the app tests: an app on a real relay server with a temporary config dir."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.app import PianoApp, options_from_args
from tui.cli import build_parser


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
