"""The TUI's built-in server: host one on loopback, or join the one another window already hosts.

    local = await host_or_join(db_path, port=8765)
    local.url, local.hosting        # where to connect; False: another process's server was joined
    await local.close()

One database has one server (pianorhythm.server.dblock). A second plain `pianorhythm-tui` on the same machine
finds the embedded database locked, reads the holder's URL from the lock file and connects there as a client.
If the hosting window quits, the joined one takes the database and the same address over, so its client's own
reconnect finds a server again and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pianorhythm.server.dblock import DatabaseInUse, read_holder
from pianorhythm.server.main import RunningServer, ServerOptions, start_server

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
ADDRESS_WAIT_S: Final = 10.0  # how long a holder that is still starting may take to say where it listens
POLL_S: Final = 0.25


class LocalServer:
    """A server this process hosts (`running`), or the address of another process's (`joined`)."""

    def __init__(
        self,
        url: str,
        db_path: Path,
        running: RunningServer | None,
        temporary: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.url = url
        self.db_path = db_path
        self.running = running
        self._temporary = temporary  # the database's directory when it is a throw-away one
        self._watch: asyncio.Task[None] | None = None
        if running is None:
            self._watch = asyncio.create_task(self._take_over_when_free(), name="local-server-watch")

    @property
    def hosting(self) -> bool:
        return self.running is not None

    @property
    def notice(self) -> str:
        """One sentence for the user: whose server this is and how others reach it."""
        if self._temporary is not None:
            return (
                f"Another window holds the local server's database but gives no address; hosting {self.url} "
                "for this window alone (nothing is kept after it closes)."
            )
        if self.hosting:
            join = f"pianorhythm-tui --connect {self.url}"
            return f"Hosting a local server. Others on this machine join with: {join}"
        return f"Joined the local server already running in another window: {self.url}"

    async def _take_over_when_free(self) -> None:
        """Once the hosting process lets go of the database, host it here at the same address."""
        port = urlsplit(self.url).port or 0
        while True:
            await asyncio.sleep(POLL_S)
            if read_holder(self.db_path) is not None:
                continue
            try:
                self.running = await start_server(ServerOptions(host=HOST, port=port, db_path=self.db_path))
            except DatabaseInUse:
                continue  # another window took it first: keep pointing at the same address
            except OSError as exc:
                log.warning(
                    "could not host the local server at %s after the other window quit: %s", self.url, exc
                )
                continue
            log.info("the window hosting %s quit; this one hosts it now", self.url)
            return

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.running is not None:
            running, self.running = self.running, None
            await running.close()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None


async def host_or_join(db_path: Path, port: int) -> LocalServer:
    """Host a server on `db_path` (at `port`, else a free one), or join the server that holds it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ADDRESS_WAIT_S
    while True:
        try:
            running = await _host(db_path, port)
            return LocalServer(running.url, db_path, running)
        except DatabaseInUse as exc:
            holder = exc.holder
        while holder is not None and not holder.url and loop.time() < deadline:
            await asyncio.sleep(POLL_S)  # the holder is starting: it writes its address once listening
            holder = read_holder(db_path)
        if holder is not None and holder.url:
            log.info("joining the local server of process %d at %s", holder.pid, holder.url)
            return LocalServer(holder.url, db_path, None)
        if holder is not None or loop.time() >= deadline:
            break
        # The holder quit meanwhile: host it here.
    log.warning(
        "another process holds %s but gives no address; hosting a server for this window alone", db_path
    )
    return await _host_alone(port)


async def _host_alone(port: int) -> LocalServer:
    """Never a second writer on a database: when the holder cannot be joined, a throw-away one."""
    directory = tempfile.TemporaryDirectory(prefix="pianorhythm-tui-")
    db_path = Path(directory.name) / "embedded.db"
    try:
        running = await _host(db_path, port)
    except BaseException:
        directory.cleanup()
        raise
    return LocalServer(running.url, db_path, running, temporary=directory)


async def _host(db_path: Path, port: int) -> RunningServer:
    try:  # the usual port makes the address others type predictable; any free one will do
        return await start_server(ServerOptions(host=HOST, port=port, db_path=db_path))
    except OSError:
        return await start_server(ServerOptions(host=HOST, port=0, db_path=db_path))
