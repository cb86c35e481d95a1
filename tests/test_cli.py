"""The installed command answers --help and --version with the options that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pianorhythm import __version__

COMMAND = shutil.which("pianorhythm-tui", path=str(Path(sys.executable).parent))


def test_help_lists_every_mode_and_option() -> None:
    assert COMMAND, "the console script is not installed: run `make venv`"
    out = subprocess.run([COMMAND, "--help"], capture_output=True, text=True, check=True).stdout
    for option in (
        "--server",
        "--headless",
        "--connect",
        "--room",
        "--name",
        "--port",
        "--db",
        "--admin-token",
        "--midi-in",
        "--soundfont",
        "--no-audio",
        "--record",
        "--play",
        "--latency",
        "--list-midi",
    ):
        assert option in out


def test_version() -> None:
    out = subprocess.run([COMMAND or "", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"pianorhythm-tui {__version__}"


def test_bad_option_is_one_clear_error() -> None:
    result = subprocess.run([COMMAND or "", "--latency", "instant"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "invalid choice: 'instant'" in result.stderr
