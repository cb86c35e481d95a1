"""Behind a reverse proxy: with `--trust-proxy 127.0.0.1`, connections from 127.0.0.1 are accounted to the
address in their X-Forwarded-For / X-Real-IP; anyone else's such headers are ignored.

Figures (a real server process, per-address cap lowered to 4 so the clients stay few): a 5th connection
forwarded for one address is refused with 429 while other forwarded addresses still get in; an attacker at
127.0.0.2 sending a new forwarded address on each of its connections is still capped at 4; an unreadable
forwarded value from the proxy falls back to the proxy's address with one WARNING.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.fixtures.relay_process import ServerProcess, connect_from, relay_process
from tests.fixtures.server import TestClient

CAP = 4
LIMIT = ("--max-connections-per-ip", str(CAP))


def forwarded(address: str) -> dict[str, Any]:
    return {"additional_headers": {"X-Forwarded-For": f"6.6.6.6, {address}"}}


async def _refused(url: str, source: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as caught:
        await connect_from(url, source, **kwargs)
    return caught.value.response.status_code


async def _logged(server: ServerProcess, pattern: str) -> list[str]:
    for _ in range(50):  # the log reader task may be a moment behind
        if found := server.logged(pattern):
            return found
        await asyncio.sleep(0.05)
    return []


async def test_a_trusted_proxy_forwarded_address_gets_the_per_address_cap(tmp_path: Path) -> None:
    clients: list[TestClient] = []
    async with relay_process(tmp_path, "--trust-proxy", "127.0.0.1", *LIMIT) as server:
        try:
            for index in range(CAP):
                clients.append(
                    await connect_from(server.url, "127.0.0.1", f"fwd{index}", **forwarded("198.51.100.7"))
                )
            assert await _refused(server.url, "127.0.0.1", **forwarded("198.51.100.7")) == 429
            clients.append(await connect_from(server.url, "127.0.0.1", "other", **forwarded("198.51.100.8")))
            real_ip = {"additional_headers": {"X-Real-IP": "203.0.113.5"}}
            clients.append(await connect_from(server.url, "127.0.0.1", "real", **real_ip))
            assert len(await _logged(server, r"connect session=\d+ ip=198\.51\.100\.7$")) == CAP
            assert await _logged(server, r"connect session=\d+ ip=198\.51\.100\.8$")
            assert await _logged(server, r"connect session=\d+ ip=203\.0\.113\.5$")
            assert not server.logged(r"ip=6\.6\.6\.6")  # what the client wrote itself is never believed
        finally:
            for client in clients:
                await client.close()


async def test_forwarded_headers_from_anyone_else_are_ignored(tmp_path: Path) -> None:
    clients: list[TestClient] = []
    async with relay_process(tmp_path, "--trust-proxy", "127.0.0.1", *LIMIT) as server:
        try:
            for index in range(CAP):
                spoof = forwarded(f"198.51.100.{index + 1}")
                clients.append(await connect_from(server.url, "127.0.0.2", f"spoof{index}", **spoof))
            assert await _refused(server.url, "127.0.0.2", **forwarded("198.51.100.99")) == 429
            assert len(await _logged(server, r"connect session=\d+ ip=127\.0\.0\.2$")) == CAP
            assert not server.logged(r"ip=198\.51\.100")
        finally:
            for client in clients:
                await client.close()


async def test_an_unreadable_forwarded_value_falls_back_to_the_proxy_with_a_warning(tmp_path: Path) -> None:
    async with relay_process(tmp_path, "--trust-proxy", "127.0.0.1") as server:
        junk = {"additional_headers": {"X-Forwarded-For": "unknown"}}
        client = await connect_from(server.url, "127.0.0.1", "junk", **junk)
        try:
            warnings = await _logged(server, r"WARNING server: unreadable X-Forwarded-For")
            assert [w.split("WARNING ", 1)[1] for w in warnings] == [
                "server: unreadable X-Forwarded-For 'unknown' from trusted proxy 127.0.0.1; "
                "using the proxy's address"
            ]
            assert await _logged(server, r"connect session=\d+ ip=127\.0\.0\.1$")
        finally:
            await client.close()


async def test_without_trust_proxy_forwarded_headers_change_nothing(tmp_path: Path) -> None:
    async with relay_process(tmp_path) as server:
        client = await connect_from(server.url, "127.0.0.1", "plain", **forwarded("198.51.100.7"))
        try:
            assert await _logged(server, r"connect session=\d+ ip=127\.0\.0\.1$")
            assert not server.logged(r"ip=198\.51\.100\.7")
        finally:
            await client.close()
