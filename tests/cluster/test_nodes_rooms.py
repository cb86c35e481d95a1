"""Issue 11, rooms across REAL nodes: `pianorhythm-tui --server --redis ... --node-id ... --secret ...`
processes (tests/fixtures/nodes.py) on one real redis-server (tests/fixtures/redis.py), real WebSocket
clients on loopback. Notes and chat cross once and in order, presence agrees, a player moves node and keeps
their room, a ban holds on the other node, a killed node's players leave (and the crown moves on), and
delivery resumes after Redis restarts or a node's link to it is cut (its rooms caught up from a snapshot)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.nodes import SECRET, relay_nodes
from tests.fixtures.proxy import JitterProxy
from tests.fixtures.redis import RedisServer
from tests.fixtures.relay_process import ServerProcess, connect_from, relay_process
from tests.fixtures.server import TestClient, answers


@contextlib.asynccontextmanager
async def players(*where: tuple[ServerProcess, str]) -> AsyncIterator[list[TestClient]]:
    """One client per (node, name), in that order, each past its Hello and lobby state; closed after."""
    made: list[TestClient] = []
    try:
        for node, name in where:
            client = await TestClient.connect(node.url)
            made.append(client)
            await client.hello(name)
        yield made
    finally:
        for client in made:
            with contextlib.suppress(Exception):
                await client.close()


async def join(client: TestClient, room: str, ref: int = 77) -> pb.RoomState:
    await client.act(ref=ref, join_room=pb.JoinRoom(name=room))
    return (await client.recv("room_state", timeout=10, where=answers(ref))).room_state


async def joined_by(client: TestClient, user_id: int, timeout: float = 10) -> pb.User:
    seen = await client.recv("user_joined", timeout, lambda m: m.user_joined.user.id == user_id)
    return seen.user_joined.user


async def left_by(client: TestClient, user_id: int, timeout: float = 10) -> pb.UserLeft:
    seen = await client.recv("user_left", timeout, lambda m: m.user_left.user_id == user_id)
    return seen.user_left


async def settled(*clients: TestClient) -> None:
    """Read what the setup made each client hear (the lobby's comings and goings), and forget it."""
    for client in clients:
        await client.pump(0.3)
        client.backlog.clear()


def batch(key: int) -> pb.NoteBatch:
    return pb.NoteBatch(base_time_us=key, events=[pb.NoteEvent(note=pb.Note(key=key, velocity=90))])


async def test_notes_and_chat_cross_nodes_once_and_in_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((a, "ann"), (a, "dan"), (b, "bob"), (b, "cy")) as (ann, dan, bob, cy),
    ):
        for player in (ann, dan, bob, cy):
            await join(player, "den")
        for watcher in (ann, dan, bob):
            await joined_by(watcher, cy.user_id)
        # Both nodes play at once, interleaved: ann (a) keys 30-59, bob (b) keys 60-89.
        for key in range(30):
            await ann.act(note_batch=batch(30 + key))
            await bob.act(note_batch=batch(60 + key))
        # Chat takes turns, each line acknowledged before the next (lines said at once: the next test).
        for line in range(3):
            for ref, speaker, name in ((100 + line, ann, "ann"), (200 + line, bob, "bob")):
                await speaker.act(ref=ref, chat_send=pb.ChatSend(content=f"{name} {line}"))
                await speaker.recv("chat_message", timeout=10, where=answers(ref))
        expected = {
            ann: {bob.user_id: list(range(60, 90))},
            dan: {ann.user_id: list(range(30, 60)), bob.user_id: list(range(60, 90))},
            bob: {ann.user_id: list(range(30, 60))},
            cy: {ann.user_id: list(range(30, 60)), bob.user_id: list(range(60, 90))},
        }
        lines = {"ann": [f"ann {n}" for n in range(3)], "bob": [f"bob {n}" for n in range(3)]}
        for player, wanted in expected.items():
            count = sum(len(keys) for keys in wanted.values())
            heard = [(await player.recv("notes", timeout=10)).notes for _ in range(count)]
            speaker_name = {ann: "ann", bob: "bob"}.get(player, "")
            own = 3 if speaker_name else 0  # acknowledged above
            chats = [(await player.recv("chat_message", timeout=10)).chat_message for _ in range(6 - own)]
            await player.pump(0.5)  # anything twice, or one's own notes back, would arrive by now
            heard += [m.notes for m in player.take("notes")]
            chats += [m.chat_message for m in player.take("chat_message")]
            by_user = {uid: [n.events[0].note.key for n in heard if n.user_id == uid] for uid in wanted}
            assert by_user == wanted and len(heard) == count
            others = {name: said for name, said in lines.items() if name != speaker_name}
            heard_lines = {name: [c.content for c in chats if c.user_name == name] for name in others}
            assert (
                heard_lines == others and len(chats) == 6 - own
            )  # one's own line only as its acknowledgement
            if not own:
                assert [c.content for c in chats] == [
                    f"{n} {line}" for line in range(3) for n in ("ann", "bob")
                ]
                assert [c.id for c in chats] == sorted({c.id for c in chats})


async def test_chat_said_on_both_nodes_at_once_is_all_stored_once_and_heard_in_id_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    rounds, per = 4, 2  # each player says `per` lines at once per round (the chat rate allows 4 per 4 s)
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((a, "ann"), (a, "dan"), (b, "bob"), (b, "cy")) as everyone,
    ):
        for player in everyone:
            await join(player, "den")
        for watcher in everyone[:3]:
            await joined_by(watcher, everyone[3].user_id)
        await settled(*everyone)
        names = dict(zip(everyone, ("ann", "dan", "bob", "cy"), strict=True))
        heard: dict[TestClient, list[pb.ChatMessage]] = {player: [] for player in everyone}
        for turn in range(rounds):
            # Every line of the round is sent before any answer is read: both nodes store at the same time.
            for number, player in enumerate(everyone):
                for line in range(per):
                    ref = 1000 * (number + 1) + 10 * turn + line
                    content = f"{names[player]} {turn}.{line}"
                    await player.act(ref=ref, chat_send=pb.ChatSend(content=content))
            said = len(everyone) * per * (turn + 1)
            for player in everyone:
                async with asyncio.timeout(15):
                    while len(heard[player]) < said and not player.take("error"):
                        await player.pump(0.05)
                        heard[player] += [m.chat_message for m in player.take("chat_message")]
                assert len(heard[player]) == said, f"{names[player]}: a line was refused"
            await asyncio.sleep(per)  # the chat rate refills
        await asyncio.gather(*(player.pump(0.5) for player in everyone))  # anything twice would be here
        contents = sorted(f"{names[p]} {t}.{n}" for p in everyone for t in range(rounds) for n in range(per))
        order = [(c.id, c.content) for c in heard[everyone[0]]]
        for player in everyone:
            assert not player.take("chat_message") and not player.take("error")
            lines = heard[player]
            assert sorted(c.content for c in lines) == contents  # every line once, one's own as its answer
            assert [(c.id, c.content) for c in lines] == order  # the same order for everyone
        assert [line_id for line_id, _ in order] == sorted({line_id for line_id, _ in order})  # id order
        # Stored once each, in that order, as either node reads the room's history.
        for player in (everyone[0], everyone[2]):
            await player.act(ref=9, chat_history_request=pb.ChatHistoryRequest(limit=50))
            page = (await player.recv("chat_history_page", timeout=10)).chat_history_page
            assert [(c.id, c.content) for c in page.messages] == order


async def test_every_node_lists_the_same_members_in_the_lobby_and_the_room(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b):
        states: list[pb.RoomState] = []
        order: list[int] = []
        async with contextlib.AsyncExitStack() as stack:
            clients: list[TestClient] = []
            for node, name in ((a, "ann"), (b, "bob"), (a, "cy"), (b, "dan")):
                client = await TestClient.connect(node.url)
                stack.push_async_callback(client.close)
                await client.act(hello=pb.Hello(name=name, client_version="tests"))
                client.welcome = (await client.recv("welcome", timeout=10)).welcome
                lobby = (await client.recv("room_state", timeout=10)).room_state
                order.append(client.user_id)
                assert (
                    lobby.name == "lobby" and [u.id for u in lobby.users] == order
                )  # the lobby, either node
                clients.append(client)
            for client in clients:
                states.append(await join(client, "den"))
            assert [[u.id for u in s.users] for s in states] == [order[: n + 1] for n in range(4)]
            assert {s.owner_id for s in states} == {order[0]}
            assert [u.name for u in states[-1].users] == ["ann", "bob", "cy", "dan"]
            # Each player saw every later arrival join exactly once in the lobby, then once in den, whichever
            # node they came through.
            for index, client in enumerate(clients):
                await client.pump(0.3)
                arrived = [m.user_joined.user.id for m in client.take("user_joined")]
                assert arrived == order[index + 1 :] * 2
            # A fifth player, on each node in turn, gets the same room state from either.
            for node, name in ((a, "eve"), (b, "fay")):
                late = await TestClient.connect(node.url)
                stack.push_async_callback(late.close)
                await late.hello(name)
                state = await join(late, "den")
                assert [u.id for u in state.users][:4] == order and state.owner_id == order[0]
            # The room list is the same from either node: den with its 6 players and ann as owner, and the
            # watchers in the lobby (gus, then gus and hal).
            for in_lobby, (node, name) in enumerate(((a, "gus"), (b, "hal")), start=1):
                watcher = await TestClient.connect(node.url)
                stack.push_async_callback(watcher.close)
                await watcher.hello(name)
                expected = {"lobby": (in_lobby, ""), "den": (6, "ann")}
                assert await _listed(watcher, expected) == expected


async def _listed(client: TestClient, expected: dict[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """The room list `client` is shown (member count, owner), its deltas applied until it is `expected` or
    10 s have passed: a player's own arrival in the lobby may reach their node's list a delta later."""
    await client.act(ref=90, room_list_subscribe=pb.RoomListSubscribe())
    rooms = (await client.recv("room_list", timeout=10, where=answers(90))).room_list.rooms
    shown = {r.name: (r.member_count, r.owner_name) for r in rooms}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            while shown != expected:
                delta = (await client.recv("room_list_delta", timeout=10)).room_list_delta
                shown.update({r.name: (r.member_count, r.owner_name) for r in delta.upserted})
                for name in delta.removed:
                    shown.pop(name, None)
    return shown


async def test_a_player_who_reconnects_to_the_other_node_is_back_in_their_room(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((a, "ann"), (b, "bob"), (a, "cy")) as (ann, bob, cy),
    ):
        for player in (ann, bob, cy):
            await join(player, "den")
        for watcher in (ann, bob):
            await joined_by(watcher, cy.user_id)
        await settled(bob, cy)
        assert ann.welcome is not None
        token, ann_id = ann.welcome.resume_token, ann.user_id
        await ann.close()  # her connection to a drops; once the others saw her go, she comes back through b
        bob.backlog.insert(0, await bob.recv("user_left", 10, lambda m: m.user_left.user_id == ann_id))
        again = await TestClient.connect(b.url)
        await again.act(hello=pb.Hello(name="ann", resume_token=token, client_version="tests"))
        welcome = (await again.recv("welcome", timeout=10)).welcome
        state = (await again.recv("room_state", timeout=10)).room_state
        assert welcome.resumed and (welcome.user.id, welcome.user.name) == (ann_id, "ann")
        assert state.name == "den" and [u.id for u in state.users] == [bob.user_id, cy.user_id, ann_id]
        assert state.owner_id == ann_id  # back within the crown's grace: hers again
        # What the others see, on either node, as on one node: she left (disconnected; the crown waits for
        # her), she joined, the crown is hers again. Once each, nothing else.
        for watcher in (bob, cy):
            await watcher.pump(1.0)
            seen = [(m.WhichOneof("event"), _about(m)) for m in watcher.backlog]
            watcher.backlog.clear()
            assert seen == [
                ("user_left", (ann_id, pb.LEAVE_REASON_DISCONNECTED)),
                ("room_updated", ("away", 0)),
                ("user_joined", (ann_id, "ann")),
                ("room_updated", ("owner", ann_id)),
            ]
        # Connecting again through a while her b connection is open: that one is replaced (4001) and the
        # others see her join once, under her own name (she is not a second "ann" beside herself).
        third = await TestClient.connect(a.url)
        await third.act(hello=pb.Hello(name="ann", resume_token=token, client_version="tests"))
        assert (await third.recv("welcome", timeout=10)).welcome.resumed
        state = (await third.recv("room_state", timeout=10)).room_state
        assert [u.id for u in state.users] == [bob.user_id, cy.user_id, ann_id] and state.owner_id == ann_id
        assert [u.name for u in state.users if u.id == ann_id] == ["ann"]
        assert (await again.closed(10))[0] == 4001
        for watcher in (bob, cy):
            await watcher.pump(1.0)
            seen = [(m.WhichOneof("event"), _about(m)) for m in watcher.backlog]
            assert seen == [("user_joined", (ann_id, "ann"))]
        await third.close()


def _about(message: pb.ServerMessage) -> tuple[object, object]:
    """The part of a room event a player acts on."""
    kind = message.WhichOneof("event")
    if kind == "user_left":
        return message.user_left.user_id, message.user_left.reason
    if kind == "user_joined":
        return message.user_joined.user.id, message.user_joined.user.name
    if kind == "room_updated":
        updated = message.room_updated
        return ("owner", updated.owner_id) if updated.owner_id else ("away", 0)
    return kind, None


async def test_a_ban_made_on_one_node_holds_on_the_other(redis_server: RedisServer, tmp_path: Path) -> None:
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((a, "ann"), (b, "cy")) as (
            ann,
            cy,
        ),
    ):
        bob = await connect_from(a.url, "127.0.0.2", hello="bob")
        try:
            assert (await join(ann, "den")).owner_id == ann.user_id
            await join(bob, "den")
            await join(cy, "den")
            await joined_by(ann, cy.user_id)
            await settled(ann, bob, cy)
            await ann.act(ref=5, ban_user=pb.BanUser(user_id=bob.user_id, duration_s=600))
            removed = (await bob.recv("removed", timeout=10)).removed
            assert (removed.reason, removed.by_user_id) == (pb.REMOVAL_REASON_BANNED, ann.user_id)
            assert (await left_by(cy, bob.user_id)).reason == pb.LEAVE_REASON_BANNED
            assert bob.welcome is not None
            token = bob.welcome.resume_token
            await bob.close()
            # Bob comes back through node b: his join is refused there, and so is a fresh identity from his
            # address; another address is let in.
            again = await connect_from(b.url, "127.0.0.2")
            await again.act(hello=pb.Hello(name="bob", resume_token=token, client_version="tests"))
            assert (await again.recv("welcome", timeout=10)).welcome.user.id == bob.user_id
            await again.act(ref=6, join_room=pb.JoinRoom(name="den"))
            assert (
                await again.recv("error", timeout=10, where=answers(6))
            ).error.code == pb.ERROR_CODE_BANNED
            fresh = await connect_from(b.url, "127.0.0.2", hello="rob")
            await fresh.act(ref=7, join_room=pb.JoinRoom(name="den"))
            assert (
                await fresh.recv("error", timeout=10, where=answers(7))
            ).error.code == pb.ERROR_CODE_BANNED
            other = await connect_from(b.url, "127.0.0.3", hello="dan")
            assert [u.id for u in (await join(other, "den")).users] == [
                ann.user_id,
                cy.user_id,
                other.user_id,
            ]
            for client in (again, fresh, other):
                await client.close()
        finally:
            await bob.close()


async def test_a_killed_nodes_players_leave_and_the_crown_moves_on(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((b, "ann"), (a, "bob"), (a, "cy")) as (ann, bob, cy),
    ):
        for player in (ann, bob, cy):
            await join(player, "den")
        await joined_by(bob, cy.user_id)
        await settled(bob, cy)
        await b.stop(signal.SIGKILL)  # ann's node, and she owns den
        # Its key lapses (10 s), a survivor's beat (every 3 s) sees it: within the 30 s the issue allows.
        for watcher in (bob, cy):
            assert (await left_by(watcher, ann.user_id, timeout=30)).reason == pb.LEAVE_REASON_DISCONNECTED
        # As on one node: the crown waits for its owner (15 s), then goes to the member here longest.
        for watcher in (bob, cy):
            crowned = await watcher.recv("room_updated", 25, lambda m: m.room_updated.owner_id != 0)
            assert crowned.room_updated.owner_id == bob.user_id
        assert a.logged("node 'b' stopped refreshing its presence")
        state = await join(cy, "den", ref=9)
        assert [u.id for u in state.users] == [bob.user_id, cy.user_id] and state.owner_id == bob.user_id


async def _until_heard(sender: TestClient, listener: TestClient, keys: range) -> int:
    """Play a note every 0.1 s (cycling through `keys`) until `listener` hears one; the key it heard."""
    attempt = 0
    while True:
        await sender.act(note_batch=batch(keys[attempt % len(keys)]))
        try:
            heard = await listener.recv("notes", timeout=0.1)
        except TimeoutError:
            attempt += 1
            continue
        return heard.notes.events[0].note.key


async def _until_said(speaker: TestClient, listener: TestClient, ref: int, content: str) -> None:
    """Say `content` until it is acknowledged and `listener` reads it (a line refused while Redis was coming
    back is said again)."""
    while True:
        await speaker.act(ref=ref, chat_send=pb.ChatSend(content=content))
        reply = await _answer(speaker, ref)
        if reply.WhichOneof("event") == "chat_message":
            said = await listener.recv("chat_message", 5, lambda m: m.chat_message.content == content)
            assert said.chat_message.user_id == speaker.user_id
            return
        await asyncio.sleep(0.1)
        ref += 1


async def _answer(client: TestClient, ref: int) -> pb.ServerMessage:
    """The chat line or the error answering `ref`."""
    while True:
        for index, message in enumerate(client.backlog):
            if message.ref == ref and message.WhichOneof("event") in ("chat_message", "error"):
                return client.backlog.pop(index)
        await client.pump(0.05)


async def test_after_redis_restarts_notes_and_chat_cross_nodes_again_within_5_s(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with (
        relay_nodes(tmp_path, redis_server.url, "a", "b") as (a, b),
        players((a, "ann"), (b, "bob")) as (ann, bob),
    ):
        for player in (ann, bob):
            await join(player, "den")
        await joined_by(ann, bob.user_id)
        await settled(ann, bob)
        redis_server.restart()
        async with asyncio.timeout(5):  # from Redis answering again
            assert await _until_heard(ann, bob, range(20, 60)) in range(20, 60)
            assert await _until_heard(bob, ann, range(70, 110)) in range(70, 110)
            await _until_said(bob, ann, 10, "back from b")
            await _until_said(ann, bob, 40, "back from a")
        for node in (a, b):
            assert len(node.logged("Redis link lost")) == 1 and len(node.logged("Redis link back after")) == 1
            # Nothing changed in den while Redis restarted: read again, and no player told anything.
            assert node.logged("read the rooms here again after the Redis link came back: 0 had changed")
        # Once and in order again: neither node subscribed twice nor lost its place.
        await settled(ann, bob)
        for key in range(100, 120):
            await ann.act(note_batch=batch(key))
        heard = [(await bob.recv("notes", timeout=5)).notes.events[0].note.key for _ in range(20)]
        await bob.pump(0.5)
        assert heard == list(range(100, 120)) and bob.take("notes") == []


async def test_a_node_cut_off_from_redis_catches_its_rooms_up_when_back(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Node a reaches Redis through a proxy; the proxy is closed (a's connections cut, b's not) while
    players on b come and go, then opened again on the same port."""
    proxy = JitterProxy("127.0.0.1", redis_server.port, delay_s=0, jitter_s=0)
    port = await proxy.start()
    through_proxy = f"redis://127.0.0.1:{port}/0"
    try:
        async with (
            relay_process(
                tmp_path, "--redis", through_proxy, "--node-id", "a", "--secret", SECRET, sqlite=False
            ) as a,
            relay_nodes(tmp_path, redis_server.url, "b") as (b,),
            players((a, "ann"), (b, "bob"), (b, "cy")) as (ann, bob, cy),
        ):
            assert (await join(bob, "den")).owner_id == bob.user_id
            await join(ann, "den")
            await joined_by(bob, ann.user_id)
            await settled(ann, bob, cy)
            await proxy.close()
            async with asyncio.timeout(5):
                while not a.logged("Redis link lost"):
                    await asyncio.sleep(0.05)
            # While a is cut off (all through b): cy enters den, bob (its owner) limits it to 8, gives cy the
            # crown and leaves.
            await join(cy, "den")
            limit = pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(user_limit=8))
            await bob.act(ref=5, update_room_settings=limit)
            await bob.recv("room_updated", 10, answers(5))
            await bob.act(ref=6, give_ownership=pb.GiveOwnership(user_id=cy.user_id))
            await bob.recv("room_updated", 10, lambda m: m.room_updated.owner_id == cy.user_id)
            await join(bob, "attic", ref=78)
            proxy = JitterProxy("127.0.0.1", redis_server.port, delay_s=0, jitter_s=0)
            await proxy.start(port=port)
            async with asyncio.timeout(10):
                while not a.logged("read the rooms here again"):
                    await asyncio.sleep(0.05)
            assert a.logged("Redis link back after") and a.logged("came back: 1 had changed")
            # a reads den again: ann is told what she missed, once each, and a gives den as it is now.
            assert (await joined_by(ann, cy.user_id, timeout=5)).name == "cy"
            assert (await left_by(ann, bob.user_id, timeout=5)).user_id == bob.user_id
            await ann.pump(0.5)
            updates = [m.room_updated for m in ann.take("room_updated")]
            assert [(u.settings.user_limit, u.owner_id) for u in updates][-1] == (8, cy.user_id)
            assert [m for m in ann.backlog if m.WhichOneof("event") in ("user_joined", "user_left")] == []
            dan = await TestClient.connect(a.url)
            await dan.hello("dan")
            state = await join(dan, "den")
            assert [u.id for u in state.users] == [ann.user_id, cy.user_id, dan.user_id]
            assert (state.owner_id, state.settings.user_limit) == (cy.user_id, 8)
            await dan.close()
            # And notes cross both ways again.
            assert await _until_heard(ann, cy, range(20, 60)) in range(20, 60)
            assert await _until_heard(cy, ann, range(70, 110)) in range(70, 110)
    finally:
        await proxy.close()
