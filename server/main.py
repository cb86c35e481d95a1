"""Run the relay: in-process (`start_server`, used by the TUI's embedded default and by tests) or as the
`pianorhythm-tui --server` command (`run_from_args`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import secrets
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from pianorhythm import __version__
from pianorhythm.interpreter import settle_gc
from pianorhythm.server.addresses import TrustedProxies
from pianorhythm.server.clock import ServerClock
from pianorhythm.server.core import CoreOptions, Limits, RelayCore
from pianorhythm.server.dblock import DatabaseInUse
from pianorhythm.server.directory import Directory
from pianorhythm.server.shell import WS_PATH, RelayShell, loop_name
from pianorhythm.server.storage import Storage
from pianorhythm.server.tls import TLSConfigError, server_context
from pianorhythm.server.ws import Settings, WebSocketServer
from pianorhythm.wire import codec

if TYPE_CHECKING:  # imported when --redis is given: a node on its own never loads redis
    from pianorhythm.server.cluster.node import ClusterNode

log = logging.getLogger("server")

SHUTDOWN_REASON = "server shutting down"
# Requested send buffer of every accepted socket (Linux doubles it for bookkeeping and accepted sockets
# inherit it from the listener). With the transport's buffer above it (server/ws.py pauses writing past
# WRITE_LIMIT_BYTES), at most ~192 KiB sit between a client's outbox and the wire, so a reader that falls
# behind shows in the outbox within a second or two instead of after megabytes of kernel autotuned buffer.
SEND_BUFFER_BYTES = 64 * 1024
WRITE_LIMIT_BYTES = 64 * 1024


class LoopUnavailable(Exception):
    """`--loop uvloop` on a machine without uvloop (the message says how to get it)."""


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop `--loop choice` runs the relay on: uvloop (libuv; its polls, reads and
    writes in C: bench/README.md "Session 7, U") when importable and not refused, else asyncio's own.
    LoopUnavailable if uvloop is asked for by name and cannot be imported."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError as exc:
            if choice == "uvloop":
                raise LoopUnavailable(
                    f"--loop uvloop needs the uvloop package, which cannot be imported here ({exc}): "
                    "install it (pip install uvloop) or use --loop asyncio."
                ) from exc
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("pianorhythm-tui")) / "server.db"


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8765  # 0 picks a free port
    db_path: Path | None = None  # None: the platformdirs user data dir / "server.db"
    admin_token: str | None = None
    max_connections_per_ip: int = 20
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    hello_timeout: float = 10.0
    close_timeout: float = 3.0
    max_frame_bytes: int = 64 * 1024
    max_queue_bytes: int = 1024 * 1024  # a client whose outgoing queue passes this is disconnected as slow
    limits: Limits | None = None  # overrides the quota defaults (tests); the fields above win
    certfile: Path | None = None  # with keyfile: serve wss:// (PEM certificate chain and private key)
    keyfile: Path | None = None
    trusted_proxies: TrustedProxies = ()  # peers whose X-Forwarded-For / X-Real-IP name the client
    redis_url: str | None = None  # one node of many sharing this Redis (db_path is then unused)
    node_id: str = ""  # with redis_url: this node's name, and the secret every node shares
    secret: str = ""


class RunningServer:
    def __init__(
        self,
        server: WebSocketServer,
        shell: RelayShell,
        directory: Directory,
        host: str,
        port: int,
        tls: bool = False,
    ) -> None:
        self._server = server
        self.shell = shell
        self._directory = directory
        self.host = host
        self.port = port
        self.url = f"{'wss' if tls else 'ws'}://{_url_host(host)}:{port}{WS_PATH}"
        self._closed = False

    async def close(self) -> None:
        """Stop accepting, close every client with 1001 "server shutting down", flush storage; on many nodes,
        leave the node list (this node's users are online nowhere)."""
        if self._closed:
            return
        self._closed = True
        self.shell.mailer.flush_all()
        await self._server.close(1001, SHUTDOWN_REASON)
        await self.shell.stop()
        await self._directory.close()
        cluster = self.shell.cluster
        if cluster is not None:
            await cluster.leave_rooms(self.shell.clock.now_us())
            await cluster.close()
        log.info("server stopped")


async def start_server(options: ServerOptions) -> RunningServer:
    """Open the database and listen. TLSConfigError if the certificate or key cannot be used."""
    if (options.certfile is None) != (options.keyfile is None):
        raise TLSConfigError("--certfile and --keyfile go together: give both to serve wss://, or neither.")
    tls = server_context(options.certfile, options.keyfile) if options.certfile and options.keyfile else None
    clock = ServerClock()
    shell: RelayShell | None = None
    cluster = _cluster_node(options, lambda: shell) if options.redis_url else None
    directory: Directory
    if cluster is None:
        directory = Storage(options.db_path or default_db_path())
    else:
        directory = await _join_cluster(cluster)
    startup = await directory.open()
    base = options.limits or Limits()
    limits = _with(
        base,
        max_connections_per_ip=options.max_connections_per_ip,
        hello_timeout_s=options.hello_timeout,
        ping_interval_s=int(options.ping_interval),
        max_frame_bytes=options.max_frame_bytes,
    )
    core = RelayCore(
        CoreOptions(
            limits,
            started_us=clock.now_us(),
            node=options.node_id if cluster is not None else "",
            admin_token=options.admin_token or "",
            server_version=f"pianorhythm-tui/{__version__}",
            token_factory=lambda: secrets.token_urlsafe(32),
            salt_factory=lambda: secrets.token_bytes(16),
        ),
        startup.rooms,
    )
    shell = RelayShell(core, directory, clock, options.max_queue_bytes, options.trusted_proxies, cluster)
    try:
        core.preload_chat("lobby", await directory.recent_chat("lobby", limits.chat_history))
        if cluster is not None:  # this node's previous run may have left connections counted, and members
            await cluster.addresses.remove_node(options.node_id)
            await cluster.leave_rooms(clock.now_us())
        shell.start()
        server = await _listen(shell, options, tls)
    except BaseException:  # the port is taken...: let go of the database, so another start can have it
        await shell.stop()
        await directory.close()
        if cluster is not None:
            await cluster.close()
        raise
    port = next(iter(server.sockets)).getsockname()[1]
    running = RunningServer(server, shell, directory, options.host, port, tls=tls is not None)
    if isinstance(directory, Storage):
        directory.advertise(running.url)
    proxies = ", ".join(map(str, options.trusted_proxies))
    log.info(
        "listening on %s (%s; event loop %s)%s",
        running.url,
        f"database {directory.path}"
        if isinstance(directory, Storage)
        else f"node {options.node_id!r} on Redis",
        loop_name(asyncio.get_running_loop()),
        f"; forwarded client addresses believed from {proxies}" if proxies else "",
    )
    return running


async def _join_cluster(cluster: ClusterNode) -> Directory:
    from pianorhythm.server.cluster.directory import RedisDirectory
    from pianorhythm.server.cluster.link import LinkError
    from pianorhythm.server.cluster.presence import NodeIdInUse

    try:
        await cluster.start()
    except (LinkError, NodeIdInUse) as exc:
        raise ClusterStartError(str(exc)) from exc
    return RedisDirectory(cluster)


def _cluster_node(options: ServerOptions, shell: Callable[[], RelayShell | None]) -> ClusterNode:
    """This node's share of Redis; what it hears goes to the shell (built after it, so found late)."""
    from pianorhythm.server.cluster.node import ClusterNode

    assert options.redis_url is not None
    if not options.node_id or not options.secret:
        raise ClusterStartError("A node on Redis needs --node-id NAME and --secret SECRET.")

    def to_shell(name: str) -> Callable[..., None]:
        def call(*args: object) -> None:
            target = shell()
            if target is not None:
                getattr(target, name)(*args)

        return call

    try:
        return ClusterNode(
            options.redis_url,
            options.node_id,
            options.secret,
            on_envelope=to_shell("on_envelope"),
            on_node_dead=to_shell("on_node_dead"),
            on_node_message=to_shell("on_node_message"),
            on_room_list=to_shell("on_room_list"),
            on_lost=to_shell("on_link_lost"),
            on_back=to_shell("on_link_back"),
            on_reaped=to_shell("on_reaped"),
        )
    except ValueError as exc:  # a URL redis-py cannot read, a node id too long
        raise ClusterStartError(f"{exc} Fix --redis or --node-id.") from exc


class ClusterStartError(Exception):
    """This node cannot join its Redis: unreachable, its --node-id taken, or a flag unusable (the message
    says how to fix it)."""


async def _listen(shell: RelayShell, options: ServerOptions, tls: ssl.SSLContext | None) -> WebSocketServer:
    settings = Settings(
        server_header=f"pianorhythm-tui/{__version__}",
        max_size=codec.frame_bytes(options.max_frame_bytes),
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        close_timeout=options.close_timeout,
        write_limit=WRITE_LIMIT_BYTES,
    )
    server = WebSocketServer(shell.handler, shell.process_request, settings)
    await server.listen(options.host, options.port, tls)
    for sock in server.sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    return server


def _with(limits: Limits, **changes: object) -> Limits:
    from dataclasses import replace

    return replace(limits, **changes)  # type: ignore[arg-type]


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1" if host != "::" else "[::1]"
    return f"[{host}]" if ":" in host else host


def raise_open_file_limit() -> None:
    """Lift this process's soft limit on open files to the hard limit: each client is a file descriptor,
    and the usual soft limit of 1,024 would turn clients away long before the machine runs out."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return
    log.info("open-file limit: %d (room for about as many clients)", hard)


def run_from_args(args: argparse.Namespace) -> int:
    """`pianorhythm-tui --server`: serve until SIGINT/SIGTERM, then shut down gracefully; returns 0."""
    options = ServerOptions(
        host=args.host,
        port=args.port,
        db_path=Path(args.db).expanduser() if args.db else None,
        admin_token=args.admin_token,
        max_connections_per_ip=args.max_connections_per_ip,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        certfile=Path(args.certfile).expanduser() if args.certfile else None,
        keyfile=Path(args.keyfile).expanduser() if args.keyfile else None,
        trusted_proxies=args.trust_proxy or (),
        redis_url=args.redis,
        node_id=args.node_id or "",
        secret=args.secret or "",
    )
    if not log.isEnabledFor(logging.DEBUG):
        # The relay logs its own line per connect/disconnect; websockets' lines would say it twice.
        logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        factory = loop_factory(args.loop or "auto")
    except LoopUnavailable as exc:
        log.error("%s", exc)
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_serve_until_signal(options))
    except (TLSConfigError, DatabaseInUse, ClusterStartError) as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error(
            "cannot listen on %s:%s: %s. Pick another --port or stop the other server.",
            args.host,
            args.port,
            exc,
        )
        return 1


async def _serve_until_signal(options: ServerOptions) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Before listening: a signal that comes as soon as "listening on" is logged still stops it cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    running = await start_server(options)
    raise_open_file_limit()  # once serving, so that a start-up error stays the only line printed
    settle_gc()  # everything built so far lives as long as the process (pianorhythm.interpreter)
    await stop.wait()
    log.info("shutting down")
    await running.close()
    return 0
