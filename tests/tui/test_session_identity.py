"""Two clients sharing one config dir, and a session replaced by its own identity (close 4001).

Real relay, real websockets, real token files. Before the fix both engines sent the same saved token, so
the server replaced one with the other, and each reconnected with it: a takeover loop.
"""

import asyncio

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.net.tokens import TokenStore
from tests.fixtures.server import TestClient
from tests.tui.test_session_reconnect import Events, entered, fast_backoff


def states(events):
    return [e.state for e in events.items if isinstance(e, m.ConnectionChanged)]


async def test_two_engines_sharing_a_config_dir_are_two_users_and_stay_connected(relay_server, tmp_path):
    url = relay_server.url
    a = Engine(EngineConfig(url, "first", room="shared", token_dir=str(tmp_path), backoff=fast_backoff()))
    a_events = Events(a)
    await a.start()
    b = None
    try:
        await a_events.wait_for(entered("shared"))
        saved = TokenStore(tmp_path).get(url)
        assert saved and a.session.owns_saved_token

        b = Engine(
            EngineConfig(url, "second", room="shared", token_dir=str(tmp_path), backoff=fast_backoff())
        )
        b_events = Events(b)
        await b.start()
        state = await b_events.wait_for(entered("shared"))
        assert not b.session.owns_saved_token
        assert b.me is not None and b.me.name == "second"
        assert b.session.user_id != a.session.user_id
        assert {u.name for u in state.room.users} == {"first", "second"}
        joined = await a_events.wait_for(lambda e: isinstance(e, m.UserJoined))
        assert joined.user.name == "second"

        await asyncio.sleep(0.5)  # the old loop turned within tens of ms with this backoff
        assert a.state is ConnectionState.CONNECTED and b.state is ConnectionState.CONNECTED
        assert states(a_events) == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        assert states(b_events) == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
        assert TokenStore(tmp_path).get(url) == saved  # B did not overwrite A's identity

        # B keeps its own identity across a reconnect (its token lives in memory).
        b_id = b.session.user_id
        await b.close()
        b = Engine(EngineConfig(url, "third", token_dir=str(tmp_path), backoff=fast_backoff()))
        await b.start()
        assert await b.wait_connected(5)
        assert b.session.user_id not in (a.session.user_id, b_id)
    finally:
        if b is not None:
            await b.close()
        await a.close()
    # A closed: its claim is released, and the next client resumes the saved identity.
    c = Engine(EngineConfig(url, "later", token_dir=str(tmp_path), backoff=fast_backoff()))
    c_events = Events(c)
    await c.start()
    try:
        welcome = await c_events.wait_for(lambda e: isinstance(e, m.Welcomed))
        assert welcome.resumed and welcome.me.name == "first"
        assert c.session.owns_saved_token
    finally:
        await c.close()


async def test_a_replaced_session_stops_and_a_user_retry_takes_the_identity_back(relay_server, tmp_path):
    url = relay_server.url
    a = Engine(EngineConfig(url, "owner", room="home", token_dir=str(tmp_path), backoff=fast_backoff()))
    events = Events(a)
    await a.start()
    other = None
    try:
        await events.wait_for(entered("home"))
        my_id = a.session.user_id
        # Somewhere else (another machine with a copy of tokens.json) the same identity says hello.
        other = await TestClient.connect(url)
        welcome = await other.hello("ignored", token=TokenStore(tmp_path).get(url))
        assert welcome.resumed and welcome.user.id == my_id

        replaced = await events.wait_for(
            lambda e: isinstance(e, m.ConnectionChanged) and e.state is ConnectionState.REPLACED
        )
        assert replaced.detail == "your identity connected from another place"
        assert replaced.retry_in_s is None and a.next_retry_in_s is None
        await other.pump(0.6)  # no reconnect: the other connection is left alone
        assert a.state is ConnectionState.REPLACED
        assert states(events)[-1] is ConnectionState.REPLACED
        assert other.ws.close_code is None  # the server did not close it

        mark = len(events.items)
        a.retry()  # the user presses R
        back = await events.wait_for(lambda e: isinstance(e, m.Welcomed), after=mark)
        assert back.resumed and back.me.id == my_id
        await events.wait_for(entered("home"), after=mark)
        code, _reason = await other.closed()
        assert code == 4001
        await asyncio.sleep(0.3)
        state: ConnectionState = a.state  # read afresh: retry() moved it on from REPLACED
        assert state is ConnectionState.CONNECTED
    finally:
        if other is not None:
            await other.close()
        await a.close()
