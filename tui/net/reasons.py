"""Why a connection failed or ended, in words a player can act on (never an exception's class name).

The server's own close reason ("server shutting down", "too slow: ...") is passed on as it is; what the
network or the handshake did is put in a short phrase, which the UI places in "Connection lost (...)" or
"Could not reach the server (...)".
"""

from __future__ import annotations

import errno
import os
import socket

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import Close, CloseCode


def closed(rcvd: Close | None, sent: Close | None) -> str:
    """Why a connection that was open ended, from the close frames received and sent (None: none)."""
    if rcvd is not None:
        if rcvd.reason:
            return rcvd.reason  # the server's own words
        if rcvd.code == CloseCode.GOING_AWAY:
            return "the server went away"
        return f"the server closed the connection (code {rcvd.code})"
    if sent is not None and sent.code == CloseCode.INTERNAL_ERROR:
        # The only 1011 we send: websockets' keepalive got no pong in time (the link went silent).
        return "the server stopped answering"
    return "the connection dropped"


def failure(exc: BaseException) -> str:
    """Why a connection attempt failed or a connection broke."""
    if isinstance(exc, ConnectionClosed):
        return closed(exc.rcvd, exc.sent)
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return f"the server answered HTTP {status} instead of a WebSocket; is the URL's path right?"
    if isinstance(exc, InvalidURI):
        return f"{exc.uri} is not a WebSocket URL ({exc.msg})"
    if isinstance(exc, InvalidHandshake):
        return f"the WebSocket handshake failed: {exc}"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, ConnectionRefusedError) or _all_refused(exc):
        return "the connection was refused; is the server running?"
    if isinstance(exc, socket.gaierror):
        return "the server's host name could not be resolved"
    if isinstance(exc, OSError):
        # asyncio puts "Connect call failed (address)" where the system's words were.
        return os.strerror(exc.errno) if exc.errno else str(exc) or "a network error"
    return str(exc) or "an unexpected error"


def _all_refused(exc: BaseException) -> bool:
    """asyncio's "Multiple exceptions: ..." when every address of a name (::1, 127.0.0.1) refused."""
    text = str(exc)
    refused = f"[Errno {errno.ECONNREFUSED}]"
    return text.startswith("Multiple exceptions:") and text.count("[Errno") == text.count(refused)


def removal(reason: str, room: str, by_name: str, duration_s: int) -> str:
    """One sentence for being taken out of a room: by whom, and for how long they keep you out."""
    if reason == "room_closed":
        return f"An admin closed the room {room}."
    if reason == "banned":
        who = f"{by_name} banned you" if by_name else "You were banned"
        return f"{who} from {room}" + (f" for {duration(duration_s)}." if duration_s else ".")
    who = f"{by_name} kicked you" if by_name else "You were kicked"
    return f"{who} from {room}" + (f"; you may come back in {duration(duration_s)}." if duration_s else ".")


def duration(seconds: int) -> str:
    """ "30 s", "10 min", "2.5 h"."""
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{-(-seconds // 60)} min"
    return f"{round(seconds / 3600, 1):g} h"
