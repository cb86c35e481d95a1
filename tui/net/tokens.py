"""Resume tokens, one per server, in the user's config dir (tokens.json, readable by the user only).

A saved token is one identity, so only one process may use it at a time: `claim(server)` takes an
advisory lock (flock) on a per-server lock file next to tokens.json and holds it until `release()` (or
until the process dies: the kernel drops flock locks with the process). A second client on the same
machine and config dir (a second TUI, a --headless bot) gets None, and must neither send nor overwrite
that token; it connects as a fresh identity instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from platformdirs import user_config_dir

log = logging.getLogger(__name__)

APP_NAME = "pianorhythm-tui"
FILE_NAME = "tokens.json"


class TokenClaim:
    """An exclusive hold on one server's saved token; `release()` (idempotent) gives it up."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor drops the flock


class TokenStore:
    """Maps a server URL to the resume token it last gave us. `directory` overrides the config dir."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(directory if directory is not None else user_config_dir(APP_NAME)) / FILE_NAME

    def lock_path(self, server: str) -> Path:
        digest = hashlib.sha256(server.encode("utf-8")).hexdigest()[:16]
        return self.path.with_name(f"tokens-{digest}.lock")

    def claim(self, server: str) -> TokenClaim | None:
        """Hold `server`'s saved token for this process; None if another live process holds it.

        If the lock cannot be taken for another reason (a read-only config dir, no flock), the claim is
        granted anyway: that is how things were before locking, and better than never resuming.
        """
        path = self.lock_path(server)
        if sys.platform == "win32":  # pragma: no cover - no flock there
            return TokenClaim(path, None)
        import fcntl

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("could not create the token lock %s (%s); not locking", path, exc)
            return TokenClaim(path, None)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.info("another pianorhythm-tui process uses the saved identity for %s", server)
            return None
        except OSError as exc:
            os.close(fd)
            log.warning("could not lock %s (%s); not locking", path, exc)
            return TokenClaim(path, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return TokenClaim(path, fd)

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable token file %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def get(self, server: str) -> str:
        return self._load().get(server, "")

    def set(self, server: str, token: str) -> None:
        data = self._load()
        if data.get(server) == token:
            return
        data[server] = token
        self._write(data)

    def forget(self, server: str) -> None:
        data = self._load()
        if data.pop(server, None) is not None:
            self._write(data)

    def _write(self, data: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the resume token to %s: %s", self.path, exc)
