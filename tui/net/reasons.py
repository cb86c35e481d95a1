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


def closed(rcvd: Close | None, sent: Close | None, silent_after_s: float) -> str:
    """Why a connection that was open ended, from the close frames received and sent (None: none)."""
    if rcvd is not None:
        if rcvd.reason:
            return rcvd.reason  # the server's own words
        if rcvd.code == CloseCode.GOING_AWAY:
            return "the server went away"
        return f"the server closed the connection (code {rcvd.code})"
    if sent is not None and sent.code == CloseCode.INTERNAL_ERROR:
        # The only 1011 we send: websockets' keepalive got no pong in time (the link went silent).
        return f"the server stopped answering for {silent_after_s:.0f} s"
    return "the connection dropped"


def failure(exc: BaseException, silent_after_s: float) -> str:
    """Why a connection attempt failed or a connection broke."""
    if isinstance(exc, ConnectionClosed):
        return closed(exc.rcvd, exc.sent, silent_after_s)
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return f"the server answered HTTP {status} instead of a WebSocket; is the URL's path right?"
    if isinstance(exc, InvalidURI):
        return f"{exc.uri} is not a WebSocket URL ({exc.msg})"
    if isinstance(exc, InvalidHandshake):
        return f"the WebSocket handshake failed: {exc}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
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
