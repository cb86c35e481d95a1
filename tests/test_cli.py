"""The installed command answers --help and --version with the options that exist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        "--certfile",
        "--keyfile",
        "--trust-proxy",
        "--loop",
        "--insecure",
    ):
        assert option in out


def test_version() -> None:
    out = subprocess.run([COMMAND or "", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"pianorhythm-tui {__version__}"


def test_bad_option_is_one_clear_error() -> None:
    result = subprocess.run([COMMAND or "", "--latency", "instant"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pianorhythm-tui: error: argument --latency: invalid choice: 'instant' (choose from 'low', "
        "'balanced', 'safe')"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "--certfile", "c.pem"], "--certfile and --keyfile go together"),
        (["--headless", "--certfile", "c.pem", "--keyfile", "k.pem"], "--certfile is for hosting"),
        (["--trust-proxy", "10.0.0.1"], "--trust-proxy is for hosting"),
        (["--headless", "--loop", "uvloop"], "--loop is for hosting: use it with --server."),
        (
            ["--server", "--trust-proxy", "proxy.example"],
            "argument --trust-proxy: 'proxy.example' is not an IP",
        ),
        (["--server", "--trust-proxy", "10.0.0.1/8"], "did you mean 10.0.0.0/8?"),
        (["--server", "--insecure"], "--insecure is for a client"),
        (["--admin-token", "t"], "in a room, an admin types /admin login TOKEN"),
    ],
)
def test_tls_flags_out_of_place_are_refused_with_a_sentence(args: list[str], message: str) -> None:
    result = subprocess.run([COMMAND or "", *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connect", "http://example.org:8765/api/websocket"], "must start with ws:// or wss://"),
        (["--connect", "example.org:8765"], "must start with ws:// or wss://"),
        (["--connect", "ws:///api/websocket"], "has no valid server host"),
        (["--connect", "ws://"], "has no valid server host"),
        (["--connect", "ws://exa mple.org/api/websocket"], "has no valid server host"),
        (["--connect", "ws://example.org:99999/api/websocket"], "has no valid port"),
        (["--connect", "ws://example.org:http/api/websocket"], "has no valid port"),
        (["--connect", "ws://example.org:0/api/websocket"], "has no valid port"),
        (["--connect", "ws://example.org:/api/websocket"], "has no valid port"),
        (["--color", "red"], "'red' is not a colour: give six hex digits, e.g. #ff8800."),
        (["--color", "#ff880"], "is not a colour"),
        (["--color", "#gg8800"], "is not a colour"),
        (["--headless", "--color", "#ff8800ff"], "is not a colour"),
    ],
)
def test_bad_urls_and_colours_are_refused_when_the_command_line_is_read(
    args: list[str], message: str
) -> None:
    result = subprocess.run([COMMAND or "", *args], capture_output=True, text=True, timeout=15)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # the sentence alone, not under argparse's usage block
    assert message in line and line.startswith("pianorhythm-tui: error: argument --")


def test_good_urls_and_colours_pass_as_given() -> None:
    from pianorhythm.tui.cli import build_parser

    parse = build_parser().parse_args
    for url in (
        "ws://127.0.0.1:8765/api/websocket",
        "wss://example.org/api/websocket",
        "WSS://[::1]:443/api/websocket",
        "ws://localhost:8765",
    ):
        assert parse(["--connect", url]).connect == url
    assert parse(["--color", "#FF8800"]).color == "#ff8800"
    assert parse(["--color", "00ffaa"]).color == "#00ffaa"


def test_a_bad_url_ends_a_real_process_at_once() -> None:
    result = subprocess.run(
        [COMMAND or "", "--headless", "--connect", "localhost:8765"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "pianorhythm-tui: error: argument --connect: 'localhost:8765' is not a WebSocket URL: it must start "
        "with ws:// or wss:// (e.g. ws://127.0.0.1:8765/api/websocket or wss://example.org/api/websocket)."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server", "--record", "out.mid"], "--record is for a player; --server has no use for it."),
        (["--list-midi", "--play", "in.mid"], "--play is for a player; --list-midi has no use for it."),
        (["--server", "--midi-out", "synth"], "--midi-out is for a player; --server has no use for it."),
        (["--exit-after-play"], "--exit-after-play needs --play FILE.mid"),
        (["--headless", "--exit-after-play"], "--exit-after-play needs --play FILE.mid"),
        (["--duration", "5"], "--duration is for --headless"),
    ],
)
def test_file_flags_out_of_place_are_refused(args: list[str], message: str) -> None:
    result = subprocess.run([COMMAND or "", *args], capture_output=True, text=True, timeout=15)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]


async def test_embedded_server_prefers_the_usual_port_and_falls_back_to_a_free_one(tmp_path, monkeypatch):
    import socket

    from pianorhythm.tui.cli import DEFAULT_PORT, start_embedded_server

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        blocker.bind(("127.0.0.1", DEFAULT_PORT))
        blocker.listen()
    except OSError:
        pass  # something else holds the port already: the fallback is exercised all the same
    try:
        server = await start_embedded_server()
        try:
            assert server.hosting and server.running is not None
            assert server.running.port != DEFAULT_PORT
            assert server.url == f"ws://127.0.0.1:{server.running.port}/api/websocket"
            assert (tmp_path / "pianorhythm-tui" / "embedded.db").exists()
        finally:
            await server.close()
    finally:
        blocker.close()
    server = await start_embedded_server()
    try:
        assert server.url == f"ws://127.0.0.1:{DEFAULT_PORT}/api/websocket"
    finally:
        await server.close()


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PIANORHYTHM_LOG_DIR", "PIANORHYTHM_CONFIG_DIR")}
    return {**env, **overrides}


@pytest.mark.parametrize(
    ("variables", "folder"),
    [
        ({"PIANORHYTHM_LOG_DIR": "logs", "PIANORHYTHM_CONFIG_DIR": "cfg"}, "logs"),
        ({"PIANORHYTHM_CONFIG_DIR": "cfg"}, "cfg"),
        ({"XDG_STATE_HOME": "state"}, "state/pianorhythm-tui/log"),
    ],
)
def test_help_names_the_log_file(variables: dict[str, str], folder: str, tmp_path: Path) -> None:
    env = _env(**{key: str(tmp_path / value) for key, value in variables.items()})
    out = subprocess.run(
        [COMMAND or "", "--help"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.endswith(f"\n  {tmp_path / folder / 'pianorhythm-tui.log'}\n")  # on a line of its own


@pytest.mark.parametrize(("level", "shown"), [("info", True), ("error", False)])
def test_headless_logs_to_stderr_at_its_level_and_writes_no_file(
    level: str, shown: bool, tmp_path: Path
) -> None:
    url = "ws://127.0.0.1:1/api/websocket"  # refused at once: the session logs that at INFO
    env = _env(PIANORHYTHM_LOG_DIR=str(tmp_path / "logs"), PIANORHYTHM_CONFIG_DIR=str(tmp_path / "cfg"))
    args = ["--headless", "--no-audio", "--connect", url, "--duration", "1", "--log-level", level]
    result = subprocess.run([COMMAND or "", *args], capture_output=True, text=True, timeout=30, env=env)
    assert (f"INFO pianorhythm.tui.net.session: connection to {url} lost or failed" in result.stderr) is shown
    assert "could not join the lobby" in result.stderr  # the sentence for the user, whatever the level
    assert not (tmp_path / "logs").exists()


def test_server_logs_to_stderr_and_writes_no_file(tmp_path: Path) -> None:
    from tests.e2e.headless_procs import Proc

    env = {"PIANORHYTHM_LOG_DIR": str(tmp_path / "logs")}
    args = ["--server", "--port", "0", "--db", str(tmp_path / "s.db"), "--log-level", "debug"]
    server = Proc(args, tmp_path, "server", env=env)
    try:
        server.wait_for(r"INFO \S+: listening on ws://", stream="stderr")
        server.wait_for(r" DEBUG ", stream="stderr")
    finally:
        server.interrupt()
    assert not (tmp_path / "logs").exists()
