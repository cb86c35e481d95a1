"""Which name you have on a server: --name applies to a resumed identity too, and the name you gave is the
one a server reached at another address (localhost rather than 127.0.0.1) knows you by.

The real app (options built as `pianorhythm-tui` builds them) on a real relay, with real token files.
"""

from __future__ import annotations

from pathlib import Path

from pianorhythm.client import model as m
from pianorhythm.tui import config as cfg
from pianorhythm.tui.app import PianoApp
from pianorhythm.tui.app_setup import options_from_args, remember_choices
from pianorhythm.tui.engine import Engine, EngineConfig
from tests.tui.app_helpers import make_args, wait_for
from tests.tui.test_session_reconnect import Events, fast_backoff


def launched(config_dir: Path, *argv: str) -> PianoApp:
    """The app as `run_from_args` makes it, choices remembered."""
    args = make_args(*argv)
    options = options_from_args(args, config_dir / "config.toml")
    remember_choices(options, args)
    return PianoApp(options)


async def run_until_named(app: PianoApp, name: str) -> tuple[int, bool]:
    """Run `app` until it is connected with `name`; returns (user id, whether the identity was resumed)."""
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.me is not None)
        await wait_for(pilot, lambda: app.engine.me.name == name)
        return app.engine.me.id, app.engine.session.welcome.resumed


async def test_a_resumed_identity_takes_the_name_given_with_name(relay_server, config_dir):
    url = relay_server.url
    first_id, resumed = await run_until_named(launched(config_dir, "--connect", url, "--name", "ada"), "ada")
    assert not resumed
    again_id, resumed = await run_until_named(launched(config_dir, "--connect", url, "--name", "bea"), "bea")
    assert resumed and again_id == first_id  # before: resumed as "ada", --name ignored


async def test_a_server_reached_at_another_address_gets_the_name_you_gave(relay_server, config_dir):
    url = relay_server.url
    assert url.startswith("ws://127.0.0.1:")
    first_id, _ = await run_until_named(launched(config_dir, "--connect", url, "--name", "ada"), "ada")
    assert cfg.load(config_dir / "config.toml").name == "ada"  # the first name given is kept
    other = url.replace("127.0.0.1", "localhost")
    other_id, resumed = await run_until_named(launched(config_dir, "--connect", other), "ada")
    assert not resumed and other_id != first_id  # before: a new identity named after the OS user
    # A later --name is for that run: the saved name stays.
    await run_until_named(launched(config_dir, "--connect", url, "--name", "cy"), "cy")
    assert cfg.load(config_dir / "config.toml").name == "ada"


async def test_a_stand_in_name_leaves_a_resumed_identity_its_own(relay_server, tmp_path):
    url = relay_server.url
    first = Engine(EngineConfig(url, "ada", token_dir=str(tmp_path), backoff=fast_backoff()))
    await first.start()
    assert await first.wait_connected(5)
    await first.close()
    stand_in = EngineConfig(url, "osuser", token_dir=str(tmp_path), name_is_fallback=True)
    again = Engine(stand_in)
    events = Events(again)
    await again.start()
    try:
        welcome = await events.wait_for(lambda e: isinstance(e, m.Welcomed))
        assert welcome.resumed and welcome.me.name == "ada"
        await events.wait_for(lambda e: isinstance(e, m.RoomEntered))
        assert not [e for e in events.items if isinstance(e, m.UserUpdated)]
        assert again.me is not None and again.me.name == "ada"
    finally:
        await again.close()
