"""No log level prints any part of a resume or admin token: a server at --log-level debug with an admin
token, and a client at debug that is given a resume token, resumes with it and sends an admin command.

Figure: 0 substrings of 8 characters of either token (as text or hex) in either process's stderr.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

import pytest

from tests.e2e.headless_procs import REPO
from tests.fixtures.relay_process import relay_process

pytestmark = pytest.mark.slow


def _pieces(token: str, size: int = 8) -> set[str]:
    """Every `size`-character piece of the token, as text and as the hex dumps websockets writes."""
    pieces = set()
    for i in range(len(token) - size + 1):
        piece = token[i : i + size]
        pieces |= {piece, piece.encode().hex(), piece.encode().hex(" ")}
    return pieces


async def test_debug_logs_hold_no_part_of_any_token(tmp_path: Path) -> None:
    admin_token = secrets.token_urlsafe(24)
    async with relay_process(tmp_path, f"--admin-token={admin_token}", log_level="debug") as server:
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.e2e.token_client", server.url, str(tmp_path / "cfg"), admin_token,
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(client.communicate(), 60)
        assert client.returncode == 0, err.decode()
        await server.stop()
    seen = json.loads(out)
    assert seen["resumed"] is True and seen["answer"] == "command_result"
    resume_token = seen["resume_token"]
    assert len(resume_token) >= 32
    client_log = err.decode()
    server_log = "\n".join(server.log)
    assert "DEBUG" in client_log and "DEBUG" in server_log  # debug logging really was on
    assert "resumed" in client_log  # ... and the log saw the resume happen
    for name, log in (("client", client_log), ("server", server_log)):
        leaked = sorted(p for p in _pieces(resume_token) | _pieces(admin_token) if p in log)
        assert not leaked, f"the {name} log holds token pieces {leaked}"
