"""Where the log goes: stderr for `--headless` and `--server`, a file (and Textual's devtools) for the TUI.

The TUI owns the terminal, so nothing may write to stderr while it runs: a warning from the engine or the
embedded server would be drawn over the screen. It logs instead to a rotating file, found by `log_path()`:

    $PIANORHYTHM_LOG_DIR/pianorhythm-tui.log          when that variable is set
    $PIANORHYTHM_CONFIG_DIR/pianorhythm-tui.log       else when that is set (tests, portable set-ups: the
                                                      log stays beside the config, out of the home dir)
    ~/.local/state/pianorhythm-tui/log/pianorhythm-tui.log   else (platformdirs' user_log_dir)

and to `textual.logging.TextualHandler`, so `textual console` shows the same lines while developing.
Textual is imported only when the TUI's logging is set up: the server and headless modes never load it.
"""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Final

from platformdirs import user_log_dir

from pianorhythm.tui.config import APP_NAME
from pianorhythm.tui.config import ENV_DIR as CONFIG_ENV_DIR

ENV_DIR: Final = "PIANORHYTHM_LOG_DIR"
FILE_NAME: Final = "pianorhythm-tui.log"
MAX_BYTES: Final = 2_000_000
BACKUPS: Final = 3  # so at most ~8 MB of logs on disk
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_dir() -> Path:
    for variable in (ENV_DIR, CONFIG_ENV_DIR):
        value = os.environ.get(variable)
        if value:
            return Path(value).expanduser()
    return Path(user_log_dir(APP_NAME))


def log_path() -> Path:
    return log_dir() / FILE_NAME


def to_stderr(level: str) -> None:
    """Log to stderr at `level` (headless, server, tools)."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    _cap_websockets()


def to_file(level: str, path: Path | None = None) -> str | None:
    """Log to the rotating file `path` (default `log_path()`) at `level`, and to Textual's devtools; never
    to the terminal. Returns None, or one sentence saying why the file could not be opened (the TUI then
    runs without a log file rather than not at all)."""
    from textual.logging import TextualHandler

    path = path or log_path()
    root = logging.getLogger()
    root.setLevel(level.upper())
    # Outside the app's context (before it starts, or from another thread) TextualHandler would print to
    # stderr; it must not, and the file has those lines.
    devtools = TextualHandler(stderr=False, stdout=False)
    devtools.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(devtools)
    logging.captureWarnings(True)  # warnings.warn() would otherwise write to stderr as well
    _cap_websockets()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError as error:
        return f"No log file this run: {path} cannot be written ({error.strerror or error})."
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    return None


def active_log_file() -> Path | None:
    """The file the root logger writes to, if `to_file` opened one."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RotatingFileHandler):
            return Path(handler.baseFilename)
    return None


def _cap_websockets() -> None:
    # websockets logs every frame at DEBUG with its payload decoded as text ("> BINARY ...hello...").
    # Hellos carry resume and admin tokens and Welcomes hand out new ones, so its loggers stop at INFO
    # whatever --log-level asks: no log level may print any part of a token.
    websockets_log = logging.getLogger("websockets")
    websockets_log.setLevel(max(logging.INFO, websockets_log.getEffectiveLevel()))
