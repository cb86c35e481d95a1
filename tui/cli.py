"""The `pianorhythm-tui` command: the one place that reaches both the client and the server.

`pianorhythm-tui` opens the TUI (on an in-process server unless --connect names one), `--server` hosts the
relay, `--headless` runs the client engine without a UI. Heavy modules are imported only for the mode
that needs them, so `--help` and `--server` stay fast and the server never loads Textual or FluidSynth.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from pianorhythm import __version__
from pianorhythm.interpreter import tuned_interpreter
from pianorhythm.tui.logs import log_path, to_file, to_stderr

if TYPE_CHECKING:
    from pianorhythm.server.addresses import TrustedProxies
    from pianorhythm.server.local import LocalServer

LOG_LEVELS = ("debug", "info", "warning", "error")
LATENCY_PRESETS = ("low", "balanced", "safe")
DEFAULT_PORT = 8765
_COLOR = re.compile(r"#?([0-9a-fA-F]{6})")


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments in one line (argparse's usage block would bury the sentence that says why)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pianorhythm-tui",
        # Raw, so the log file's path stays on one line (argparse would break it at a hyphen).
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A terminal multiplayer piano. With no options it starts a local server and opens the\n"
        "TUI in its lobby.",
        epilog="The TUI logs to this file, never to the terminal it draws on (PIANORHYTHM_LOG_DIR\n"
        f"changes the folder):\n  {log_path()}",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=None,
        help="logging level (default info, warning for --list-midi): --server, --headless and --list-midi "
        "log to stderr, the TUI to its log file (below)",
    )

    mode = parser.add_argument_group("mode")
    exclusive = mode.add_mutually_exclusive_group()
    exclusive.add_argument("--server", action="store_true", help="host a relay server instead of playing")
    exclusive.add_argument(
        "--headless", action="store_true", help="run the client without a UI (bots, scripts)"
    )
    exclusive.add_argument(
        "--list-midi", action="store_true", help="print the MIDI input and output ports and exit"
    )

    host = parser.add_argument_group("server (with --server)")
    host.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    host.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default 8765)")
    host.add_argument("--db", metavar="PATH", help="SQLite database (default: in the user data dir)")
    host.add_argument("--admin-token", metavar="TOKEN", help="token that authorises admin commands")
    host.add_argument(
        "--max-connections-per-ip", type=int, default=20, metavar="N", help="connections per IP (default 20)"
    )
    host.add_argument(
        "--ping-interval", type=float, default=20.0, metavar="S", help="heartbeat (default 20 s)"
    )
    host.add_argument(
        "--ping-timeout", type=float, default=20.0, metavar="S", help="pong timeout (default 20 s)"
    )
    host.add_argument(
        "--certfile", metavar="PATH", help="PEM certificate chain: serve wss:// (needs --keyfile)"
    )
    host.add_argument("--keyfile", metavar="PATH", help="PEM private key of --certfile (unencrypted)")
    host.add_argument(
        "--trust-proxy",
        type=_trusted_proxies,
        metavar="ADDR[,ADDR...]",
        help="reverse proxies (IPs or CIDR networks) whose X-Forwarded-For / X-Real-IP name the client's "
        "address for per-address limits, bans and logs; from any other peer those headers are ignored",
    )
    host.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        help="event loop: uvloop (faster, when installed) or asyncio's own (default auto: uvloop if it can "
        "be imported)",
    )
    host.add_argument(
        "--redis",
        metavar="URL",
        help="one of many relay nodes sharing redis://HOST:PORT/DB (users, chat history, per-address "
        "counts); needs --node-id and --secret, and keeps no SQLite database",
    )
    host.add_argument(
        "--node-id", metavar="NAME", help="with --redis: this node's name, unique among the nodes"
    )
    host.add_argument(
        "--secret",
        metavar="SECRET",
        help="with --redis: shared by every node; keys the resume tokens in Redis",
    )

    client = parser.add_argument_group("client")
    client.add_argument(
        "--connect",
        type=_websocket_url,
        metavar="URL",
        help="server to join, e.g. ws://host:8765/api/websocket or wss://...",
    )
    client.add_argument(
        "--insecure",
        action="store_true",
        help="wss://: accept a certificate that cannot be verified (self-signed); only for servers you trust",
    )
    client.add_argument("--room", metavar="NAME", help="room to join (default: the lobby)")
    client.add_argument("--name", metavar="NAME", help="your display name")
    client.add_argument("--color", type=_color, metavar="#RRGGBB", help="your colour")
    client.add_argument("--midi-in", metavar="PORT", help="MIDI input port (substring of its name)")
    client.add_argument(
        "--midi-out", metavar="PORT", help="send remote players to this MIDI port too (part of its name)"
    )
    client.add_argument("--midi-api", choices=("alsa", "jack"), help="MIDI system (default: ALSA on Linux)")
    client.add_argument("--soundfont", metavar="PATH", help="SoundFont (.sf2) to play with")
    client.add_argument("--audio-driver", metavar="NAME", help="FluidSynth audio driver (default: auto)")
    client.add_argument(
        "--keys",
        choices=("auto", "press-release", "fixed"),
        help="computer keys: held notes where the terminal reports key release (kitty protocol), or"
        " fixed-length notes (default: auto, asks the terminal)",
    )
    client.add_argument(
        "--no-audio", action="store_true", help="do not make sound (notes still flow and show)"
    )
    client.add_argument("--latency", choices=LATENCY_PRESETS, help="playout delay preset (default balanced)")
    client.add_argument("--record", metavar="FILE.mid", help="record everything played to a MIDI file")
    client.add_argument("--play", metavar="FILE.mid", help="play a MIDI file into the room")
    client.add_argument("--exit-after-play", action="store_true", help="exit when --play finishes")
    client.add_argument("--duration", type=float, metavar="S", help="headless: exit after S seconds")
    return parser


def _trusted_proxies(text: str) -> TrustedProxies:
    from pianorhythm.server.addresses import parse_trusted

    try:
        return parse_trusted(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _websocket_url(text: str) -> str:
    """A ws:// or wss:// URL with a host and a valid port: checked now, not after a minute of retries."""
    example = "e.g. ws://127.0.0.1:8765/api/websocket or wss://example.org/api/websocket"
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("ws", "wss"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a WebSocket URL: it must start with ws:// or wss:// ({example})."
        )
    if not parts.hostname or any(char.isspace() for char in parts.netloc):
        raise argparse.ArgumentTypeError(f"{text!r} has no valid server host ({example}).")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or (port is None and parts.netloc.endswith(":")):
        raise argparse.ArgumentTypeError(
            f"{text!r} has no valid port: give a number from 1 to 65535 ({example})."
        )
    return text.strip()


def _color(text: str) -> str:
    """#RRGGBB (the # may be left out), as the server stores it: lower case with the #."""
    match = _COLOR.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a colour: give six hex digits, e.g. #ff8800.")
    return "#" + match.group(1).lower()


def _check_modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse flags that would do nothing in the chosen mode, and a certificate without its key."""
    hosting = ("certfile", "keyfile", "trust_proxy", "redis", "node_id", "secret", "loop")
    server_only = [flag for flag in hosting if getattr(args, flag)]
    if server_only and not args.server:
        parser.error(f"--{server_only[0].replace('_', '-')} is for hosting: use it with --server.")
    if args.admin_token and not args.server:
        parser.error("--admin-token is for hosting (--server); in a room, an admin types /admin login TOKEN.")
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together: give both to serve wss://, or neither.")
    if args.insecure and (args.server or args.list_midi):
        parser.error("--insecure is for a client connecting to a wss:// server; a server has no use for it.")
    _check_cluster_flags(parser, args)
    _check_file_flags(parser, args)


def _check_cluster_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--redis needs --node-id and --secret, which mean nothing without it; --db is SQLite, not Redis."""
    if args.redis:
        if not args.redis.startswith(("redis://", "rediss://", "unix://")):
            parser.error(
                f"--redis {args.redis!r} is not a Redis URL: give one like redis://127.0.0.1:6379/0."
            )
        if not args.node_id:
            parser.error("--redis needs --node-id NAME: a name for this node, different on every node.")
        if not args.secret:
            parser.error(
                "--redis needs --secret SECRET: the same secret on every node (it keys resume tokens)."
            )
        if args.db:
            parser.error(
                "--db is the single-node database; with --redis users and chat live in Redis: drop --db."
            )
    elif args.node_id or args.secret:
        flag = "--node-id" if args.node_id else "--secret"
        parser.error(f"{flag} is for a node sharing Redis: use it with --redis redis://HOST:PORT/DB.")


def _check_file_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--record, --play, --exit-after-play, --duration and --midi-out belong to a client; --duration to
    --headless."""
    flags = ("record", "play", "exit_after_play", "duration", "midi_out")
    client_only = [flag for flag in flags if getattr(args, flag)]
    if client_only and (args.server or args.list_midi):
        mode = "--server" if args.server else "--list-midi"
        parser.error(f"--{client_only[0].replace('_', '-')} is for a player; {mode} has no use for it.")
    if args.exit_after_play and not args.play:
        parser.error("--exit-after-play needs --play FILE.mid: it exits when that file has played.")
    if args.duration is not None and not args.headless:
        parser.error("--duration is for --headless; in the TUI press Ctrl+Q to quit.")


def configure_logging(level: str, *, tui: bool = False) -> str | None:
    """Headless, server and tools log to stderr at `level` (one of LOG_LEVELS). The TUI owns the terminal, so
    it logs to a file and Textual's devtools instead (pianorhythm.tui.logs); returns why that file could not
    be opened, if it could not."""
    if tui:
        return to_file(level)
    to_stderr(level)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_modes(parser, args)
    tui = not (args.server or args.headless or args.list_midi)
    log_problem = configure_logging(args.log_level or ("warning" if args.list_midi else "info"), tui=tui)
    with tuned_interpreter():  # the process-wide settings, for every mode; restored on the way out
        return _run_mode(args, tui, log_problem)


def _run_mode(args: argparse.Namespace, tui: bool, log_problem: str | None) -> int:
    if args.server:
        from pianorhythm.server.main import run_from_args

        return run_from_args(args)
    if args.list_midi:
        from pianorhythm.tui.midi.ports import print_ports

        return print_ports(args.midi_api)
    if args.headless:
        from pianorhythm.tui.headless import run_from_args as run_headless

        return run_headless(args)
    from pianorhythm.tui.app import run_from_args as run_app

    starter = None if args.connect else start_embedded_server
    return run_app(args, starter, notices=[log_problem] if log_problem else [])


async def start_embedded_server() -> LocalServer:
    """The embedded default: a relay on loopback (port 8765, else a free one), inside the TUI's process, or
    the one another window on this machine already runs on the same database (pianorhythm.server.local).

    Its database sits beside a hosted server's, in a file of its own, so a local room keeps its chat
    history and your identity between runs.
    """
    from pianorhythm.server.local import host_or_join
    from pianorhythm.server.main import default_db_path

    return await host_or_join(default_db_path().with_name("embedded.db"), DEFAULT_PORT)


if __name__ == "__main__":
    sys.exit(main())
