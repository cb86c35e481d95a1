"""Reconnect: server restart (same identity and room), a dropped path (missed chat fetched), giving up and
a user retry. Real relay, real SQLite file, real websockets; backoff shortened so the test is quick."""

import asyncio
import random

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.server.main import ServerOptions, start_server
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.net.backoff import Backoff
from tests.fixtures.proxy import JitterProxy


async def start_test_server(db, port=0):
    return await start_server(ServerOptions(port=port, db_path=db))


def fast_backoff(**kwargs):
    return Backoff(base_s=0.05, max_s=0.2, rng=random.Random(0), **kwargs)


class Events:
    def __init__(self, engine):
        self.items: list[m.EngineEvent] = []
        self.changed = asyncio.Event()
        engine.subscribe(self.add)

    def add(self, event):
        self.items.append(event)
        self.changed.set()

    async def wait_for(self, predicate, timeout=10.0, after=0):
        async with asyncio.timeout(timeout):
            while True:
                for event in self.items[after:]:
                    if predicate(event):
                        return event
                self.changed.clear()
                await self.changed.wait()


def entered(room, resumed=None):
    return lambda e: (
        isinstance(e, m.RoomEntered) and e.room.name == room and (resumed is None or e.resumed == resumed)
    )


async def test_server_restart_resumes_identity_and_room(tmp_path):
    db = tmp_path / "server.db"
    server = await start_test_server(db)
    port = server.port
    engine = Engine(
        EngineConfig(
            server.url, "phoenix", room="ashes", token_dir=str(tmp_path / "cfg"), backoff=fast_backoff()
        )
    )
    events = Events(engine)
    await engine.start()
    try:
        await events.wait_for(entered("ashes"))
        first_id = engine.session.user_id
        assert first_id

        await server.close()
        await events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.RECONNECTING
        )
        mark = len(events.items)
        server = await start_test_server(db, port=port)

        welcome = await events.wait_for(lambda e: isinstance(e, m.Welcomed), after=mark)
        assert welcome.resumed
        assert welcome.me.id == first_id
        assert welcome.me.name == "phoenix"
        state = await events.wait_for(entered("ashes"), after=mark)
        assert state.resumed
        assert [u.name for u in state.room.users] == ["phoenix"]
        assert engine.state is ConnectionState.CONNECTED
    finally:
        await engine.close()
        await server.close()


async def test_dropped_path_resumes_and_fetches_missed_chat(relay_server, tmp_path):
    proxy = JitterProxy("127.0.0.1", relay_server.port, delay_s=0, jitter_s=0)
    port = await proxy.start()
    a = Engine(EngineConfig(proxy.url(), "away", room="den", token_dir=str(tmp_path), backoff=fast_backoff()))
    b = Engine(EngineConfig(relay_server.url, "stay", room="den", save_token=False))
    a_events, b_events = Events(a), Events(b)
    await a.start()
    await b.start()
    try:
        await a_events.wait_for(entered("den"))
        await b_events.wait_for(
            lambda e: isinstance(e, m.UserJoined) or (entered("den")(e) and len(e.room.users) == 2)
        )
        b.send_chat("before")
        await a_events.wait_for(lambda e: isinstance(e, m.ChatReceived) and e.line.content == "before")

        await proxy.close()  # A's path drops; the server sees A disconnect
        await a_events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.RECONNECTING
        )
        await b_events.wait_for(lambda e: isinstance(e, m.UserLeft) and e.name == "away")
        b.send_chat("while you were away")
        await b_events.wait_for(
            lambda e: isinstance(e, m.ChatReceived) and e.line.content == "while you were away"
        )
        mark = len(a_events.items)
        proxy = JitterProxy("127.0.0.1", relay_server.port, delay_s=0, jitter_s=0)
        await proxy.start(port=port)

        state = await a_events.wait_for(entered("den", resumed=True), after=mark)
        assert {u.name for u in state.room.users} == {"away", "stay"}
        catch_up = await a_events.wait_for(lambda e: isinstance(e, m.ChatHistory) and e.catch_up, after=mark)
        assert [line.content for line in catch_up.lines] == ["while you were away"]
        # Live chat after the resume is not duplicated by the catch-up.
        b.send_chat("welcome back")
        await a_events.wait_for(lambda e: isinstance(e, m.ChatReceived) and e.line.content == "welcome back")
        contents = [e.line.content for e in a_events.items if isinstance(e, m.ChatReceived)]
        assert contents == ["before", "welcome back"]
    finally:
        await a.close()
        await b.close()
        await proxy.close()


async def test_gives_up_after_five_attempts_and_a_user_retry_works(tmp_path):
    db = tmp_path / "server.db"
    server = await start_test_server(db)
    port, url = server.port, server.url
    await server.close()
    engine = Engine(EngineConfig(url, "patient", save_token=False, backoff=fast_backoff()))
    events = Events(engine)
    await engine.start()
    server = None
    try:
        gave_up = await events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.GAVE_UP
        )
        assert gave_up.detail  # says why
        assert engine.session.config.backoff.failures == 5
        server = await start_test_server(db, port=port)
        await asyncio.sleep(0.3)
        assert engine.state is ConnectionState.GAVE_UP  # it really stopped trying
        engine.retry()
        assert await engine.wait_connected(5)
    finally:
        await engine.close()
        if server is not None:
            await server.close()


async def test_reconnecting_events_carry_the_delay_before_the_next_attempt(tmp_path):
    db = tmp_path / "server.db"
    server = await start_test_server(db)
    url = server.url
    await server.close()
    engine = Engine(EngineConfig(url, "counting", save_token=False, backoff=fast_backoff(max_attempts=3)))
    events = Events(engine)
    countdown: list[tuple[float, float | None]] = []

    def watch(event):
        if isinstance(event, m.ConnectionChanged) and event.retry_in_s is not None:
            countdown.append((event.retry_in_s, engine.next_retry_in_s))

    engine.subscribe(watch)
    await engine.start()
    try:
        gave_up = await events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.GAVE_UP
        )
        assert gave_up.retry_in_s is None and engine.next_retry_in_s is None
    finally:
        await engine.close()
    # The same backoff, replayed: each wait announces exactly the delay the session then waits.
    twin = fast_backoff(max_attempts=3)
    expected = []
    for _ in range(2):
        twin.failed()
        expected.append(twin.next_delay())
    waiting = [e for e in events.items if isinstance(e, m.ConnectionChanged) and e.retry_in_s is not None]
    assert [e.retry_in_s for e in waiting] == expected
    assert all(e.state is ConnectionState.RECONNECTING and e.detail for e in waiting)
    assert all(left is not None and 0 <= left <= delay for delay, left in countdown)
    # While an attempt is under way there is no countdown.
    attempts = [e for e in events.items if isinstance(e, m.ConnectionChanged) and e.retry_in_s is None]
    assert attempts[0].state is ConnectionState.CONNECTING
