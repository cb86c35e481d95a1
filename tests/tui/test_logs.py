"""The TUI's log goes to its file (and Textual's devtools), never to the terminal the TUI draws on.

The real app runs on a real relay; lines are logged from the app's loop, from another thread and through
`warnings.warn`, and the file descriptors 1 and 2 are captured (capfd) to show nothing reached them.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import pytest
from textual.widgets import Label

from pianorhythm.tui import logs
from pianorhythm.tui.screens.lobby import LobbyScreen
from pianorhythm.tui.screens.settings import SettingsScreen
from tests.tui.app_helpers import make_app, wait_for


def _log_from_everywhere(marker: str) -> None:
    logging.getLogger("pianorhythm.tui.engine").warning("%s from the loop", marker)
    logging.getLogger("pianorhythm.tui.engine").debug("%s debug, below the level", marker)
    thread = threading.Thread(
        target=lambda: logging.getLogger("pianorhythm.server.shell").error("%s from a thread", marker)
    )
    thread.start()
    thread.join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"{marker} as a warning", RuntimeWarning, stacklevel=1)


async def test_lines_land_in_the_file_and_never_on_the_terminal(
    relay_server, config_dir, tmp_path, monkeypatch, capfd, fresh_logging
):
    monkeypatch.setenv(logs.ENV_DIR, str(tmp_path / "logs"))
    assert logs.to_file("info") is None
    path = tmp_path / "logs" / logs.FILE_NAME
    assert logs.active_log_file() == path
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, LobbyScreen) and app.connection == "connected")
        _log_from_everywhere("MARK-1")
        await pilot.press("f2")
        assert isinstance(app.screen, SettingsScreen)
        assert str(app.screen.query_one("#log_file", Label).render()) == f"Log file: {path}"
    out, err = capfd.readouterr()
    assert "MARK-1" not in out + err
    text = path.read_text()
    for line in (
        "WARNING pianorhythm.tui.engine: MARK-1 from the loop",
        "ERROR pianorhythm.server.shell: MARK-1 from a thread",
    ):
        assert line in text
    assert "MARK-1 as a warning" in text
    assert "debug, below the level" not in text
    assert "INFO" in text  # the app's own info lines (connecting, the welcome) are kept too


async def test_debug_keeps_websockets_at_info(tmp_path, monkeypatch, fresh_logging):
    monkeypatch.setenv(logs.ENV_DIR, str(tmp_path))
    assert logs.to_file("debug") is None
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("websockets.client").getEffectiveLevel() == logging.INFO


async def test_an_unwritable_log_dir_is_said_once_and_the_app_runs_without_a_file(
    relay_server, config_dir, tmp_path, monkeypatch, capfd, fresh_logging
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be")
    monkeypatch.setenv(logs.ENV_DIR, str(blocker / "logs"))
    problem = logs.to_file("info")
    assert problem is not None and str(blocker / "logs" / logs.FILE_NAME) in problem
    assert problem.startswith("No log file this run:")
    assert logs.active_log_file() is None
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann")
    app.notices.append(problem)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.connection == "connected")
        assert problem in [str(n.message) for n in app._notifications]
        _log_from_everywhere("MARK-2")
        await pilot.press("f2")
        assert str(app.screen.query_one("#log_file", Label).render()) == "Log file: none in this run"
    out, err = capfd.readouterr()
    assert "MARK-2" not in out + err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PIANORHYTHM_LOG_DIR": "logs", "PIANORHYTHM_CONFIG_DIR": "cfg"}, Path("logs")),
        ({"PIANORHYTHM_CONFIG_DIR": "cfg"}, Path("cfg")),
        ({"XDG_STATE_HOME": "state"}, Path("state/pianorhythm-tui/log")),
    ],
)
def test_where_the_log_goes(env, expected, tmp_path, monkeypatch):
    monkeypatch.delenv("PIANORHYTHM_LOG_DIR", raising=False)
    monkeypatch.delenv("PIANORHYTHM_CONFIG_DIR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    assert logs.log_path() == tmp_path / expected / "pianorhythm-tui.log"
