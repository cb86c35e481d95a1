"""The app with `--connect wss://...` on a relay serving a self-signed certificate: without --insecure it
says why at once and stops; with it, a warning toast and into the lobby."""

from __future__ import annotations

from pathlib import Path

from pianorhythm.server.main import RunningServer
from tests.tui.app_helpers import make_app, wait_for


async def test_an_unverifiable_certificate_is_one_message_at_once(
    tls_server: RunningServer, config_dir: Path
) -> None:
    app = make_app(config_dir, "--connect", tls_server.url, "--name", "ann")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "gave_up")
        messages = [n.message for n in app._notifications]
        assert (
            "The server's certificate could not be verified (self-signed certificate); "
            "use --insecure only if you trust this server. Press Ctrl+R to retry."
        ) in messages
        assert app.engine.session.refused  # given up at once, not after the backoff's attempts


async def test_insecure_warns_and_connects(tls_server: RunningServer, config_dir: Path) -> None:
    app = make_app(config_dir, "--connect", tls_server.url, "--name", "ann", "--insecure")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        assert any("certificate is not checked" in n.message for n in app._notifications)
