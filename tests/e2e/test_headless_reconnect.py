"""Kill the server process mid-session and start it again on the same port: the headless client resumes
the same identity and room by itself (and its backoff starts at about 1 s)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.headless_procs import headless, start_server

pytestmark = pytest.mark.slow


def test_client_resumes_identity_and_room_after_a_server_restart(tmp_path):
    server, url = start_server(tmp_path)
    found = re.search(r":(\d+)/", url)
    assert found is not None, url
    port = int(found.group(1))
    client = None
    try:
        client = headless(tmp_path, url, "carol", "--room", "stage", "--duration", "30")
        first = client.wait_for(r"welcome id=(\d+) name=carol")
        client.wait_for(r"room stage users=1")
        server.kill()  # no goodbye: SIGKILL
        lost = client.wait_for(r"connection reconnecting")
        server, url2 = start_server(tmp_path, port=port, name="server2")
        assert url2 == url
        again = client.wait_for(r"welcome id=(\d+) name=carol resumed", after=lost.end(), timeout=20)
        assert again.group(1) == first.group(1)
        client.wait_for(r"room stage users=1", after=again.end())
        assert client.interrupt() == 0
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
