"""Rooms in Redis: two "nodes" (a Link and a Rooms each) in one process on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from pianorhythm.server.cluster import keys
from pianorhythm.server.cluster.envelope import EVENT, Envelope
from pianorhythm.server.cluster.link import Link
from pianorhythm.server.cluster.presence import Presence
from pianorhythm.server.cluster.rooms import (
    BANNED_HERE,
    CLAIM,
    DUE,
    FULL,
    GONE,
    LIST_CHUNK,
    LOCKED,
    NOT_MEMBER,
    NOT_OWNER,
    SELF,
    STALE,
    TAKEN,
    BadEvent,
    Banned,
    Changed,
    Crown,
    Crowned,
    Joined,
    Left,
    ListDelta,
    MemberUpdated,
    Muted,
    Outcome,
    PasswordHashed,
    Refused,
    RoomEvent,
    Rooms,
    RoomSummary,
    SettingsChange,
    SettingsChanged,
    Unbanned,
    decode_event,
    decode_list_delta,
)
from pianorhythm.server.core.records import BanRecord
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.fixtures.redis import RedisServer

WITHIN = 5.0
GRACE_S = 15.0
GRACE = int(GRACE_S * 1_000_000)
T0 = 1_700_000_000_000_000


@dataclass
class Node:
    link: Link
    rooms: Rooms
    events: dict[str, list[RoomEvent]] = field(default_factory=dict)
    deltas: list[ListDelta] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    back: asyncio.Event = field(default_factory=asyncio.Event)  # the link is back after a blip

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()

    async def hold(self, *rooms: str) -> None:
        for room in rooms:
            self.link.join(room)
        await self.link.settled()

    def seen(self, room: str) -> list[RoomEvent]:
        return self.events.get(room, [])

    async def join(self, room: str, user: int, now: int = T0, **kw: object) -> Outcome:
        kw.setdefault("address", f"10.0.0.{user % 250}")
        return await self.rooms.join(room, user, name=f"u{user}", now_us=now, **kw)  # type: ignore[arg-type]


def make_node(url: str, name: str) -> Node:
    holder: list[Node] = []

    def on_envelope(room: str, envelope: Envelope) -> None:
        assert envelope.kind == EVENT
        holder[0].events.setdefault(room, []).append(decode_event(envelope.payload))
        holder[0].arrived.set()

    def on_room_list(envelope: Envelope) -> None:
        holder[0].deltas.append(decode_list_delta(envelope.payload))
        holder[0].arrived.set()

    link = Link(
        url, name, on_envelope=on_envelope, on_room_list=on_room_list, on_back=lambda _: holder[0].back.set()
    )
    holder.append(Node(link, Rooms(link.redis, name, crown_grace_s=GRACE_S)))
    return holder[0]


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    a, b = make_node(redis_server.url, "node-a"), make_node(redis_server.url, "node-b")
    await a.link.start()
    await b.link.start()
    try:
        yield a, b
    finally:
        await a.link.close()
        await b.link.close()


def joined(outcome: Outcome) -> Changed:
    assert isinstance(outcome, Changed), outcome
    return outcome


async def test_joins_from_both_nodes_are_seen_in_one_order_by_both(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.hold("den")
    await b.hold("den")
    outcomes = await asyncio.gather(
        *(node.join("den", user, T0 + user) for user in range(1, 21) for node in [a if user % 2 else b])
    )
    assert all(isinstance(o, Changed) for o in outcomes)
    # Only the node holding a member takes them out: 7 is held by a, so b's leave of 7 (an old connection
    # closing after the player moved on) changes nothing.
    await asyncio.gather(*(node.rooms.leave("den", u, pb.LEAVE_REASON_LEFT, T0 + 100) for u, node in
                           [(7, b), (3, a), (4, b), (5, a)]))  # fmt: skip
    for node in nodes:
        await node.until(lambda n=node: len(n.seen("den")) == 1 + 20 + 3)  # type: ignore[misc]
    assert a.seen("den") == b.seen("den")
    events = a.seen("den")
    assert [e.seq for e in events] == list(range(1, 25))
    assert isinstance(events[0], SettingsChanged) and events[0].version == 1  # the room was created
    first = events[1]
    assert isinstance(first, Joined) and first.crown == Crown(first.user_id, 0, 0)  # the first is owner
    assert all(isinstance(e, Joined) and e.crown.owner_id == first.user_id for e in events[2:21])
    assert {e.user_id for e in events[1:21] if isinstance(e, Joined)} == set(range(1, 21))
    assert {(e.user_id, e.reason) for e in events[21:] if isinstance(e, Left)} == {
        (u, pb.LEAVE_REASON_LEFT) for u in (3, 4, 5)
    }
    snapshot = await b.rooms.snapshot("den")
    assert snapshot is not None and snapshot.seq == 24
    assert [m.user_id for m in snapshot.members] == [
        e.user_id for e in events if isinstance(e, Joined) and e.user_id not in (3, 4, 5)
    ]
    assert {m.node for m in snapshot.members if m.user_id % 2} == {"node-a"}


async def test_a_full_room_refuses_the_extra_joins_atomically(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    joined(await a.join("den", 1, settings=SettingsChange(user_limit=5)))
    outcomes = await asyncio.gather(*((a if u % 2 else b).join("den", u) for u in range(2, 22)))
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert len(refused) == 16 and {o.reason for o in refused} == {FULL}
    snapshot = await a.rooms.snapshot("den")
    assert snapshot is not None and len(snapshot.members) == 5 and snapshot.record.user_limit == 5
    # The owner and a resuming member pass the limit; a refused join left the user where they were.
    joined(await b.join("lobby", 30))
    assert isinstance(await b.join("den", 30), Refused)
    assert [m.user_id for m in (await b.rooms.snapshot("lobby") or pytest.fail()).members] == [30]
    joined(await b.join("den", 30, resuming=True))


async def test_a_ban_made_on_one_node_holds_on_the_other_also_for_a_fresh_identity_from_its_scope(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.hold("den", "lobby")
    await b.hold("den", "lobby")
    joined(await a.join("den", 1))
    joined(await b.join("den", 2, address="2001:db8:1:2::7"))
    until = T0 + 3600 * 1_000_000
    ban = BanRecord(2, "u2", "2001:db8:1:2::7", until)
    assert isinstance(await b.rooms.ban("den", 2, ban, T0), Refused)  # only the owner bans
    changed = joined(await a.rooms.ban("den", 1, ban, T0))
    assert [(room, type(e)) for room, e in changed.events] == [
        ("den", Banned), ("den", Left), ("lobby", SettingsChanged), ("lobby", Joined)
    ]  # the banned member was moved to the lobby, on its own node  # fmt: skip
    await b.until(lambda: len(b.seen("lobby")) == 2 and len(b.seen("den")) == 5)
    left = b.seen("den")[-1]
    assert isinstance(left, Left) and (left.user_id, left.reason) == (2, pb.LEAVE_REASON_BANNED)
    lobby = b.seen("lobby")[-1]
    assert isinstance(lobby, Joined) and (lobby.user_id, lobby.node) == (2, "node-b")

    refusal = await b.join("den", 2, T0 + 1, address="192.0.2.9")
    assert isinstance(refusal, Refused) and refusal.reason == BANNED_HERE
    assert refusal.ban == BanRecord(2, "u2", "2001:db8:1:2::/64", until)
    fresh = await b.join("den", 77, T0 + 1, address="2001:db8:1:2:aaaa::1")  # a new identity, same /64
    assert isinstance(fresh, Refused) and fresh.ban is not None and fresh.ban.user_id == 2
    joined(await b.join("den", 78, T0 + 1, address="2001:db8:1:3::1"))  # another /64
    joined(await b.join("den", 2, until, address="2001:db8:1:2::7"))  # the ban ended
    joined(await b.rooms.leave("den", 2, pb.LEAVE_REASON_LEFT, until))
    joined(await a.rooms.ban("den", 1, BanRecord(2, "u2", "", until + 10**9, kick=True), until))
    assert isinstance(await b.join("den", 2, until + 1), Refused)
    unbanned = joined(await a.rooms.unban("den", 1, [2, 99], until + 2))
    assert [e for _, e in unbanned.events if isinstance(e, Unbanned)][0].user_ids == (2,)
    joined(await b.join("den", 2, until + 3))


async def test_a_ban_asked_by_a_node_that_does_not_hold_the_member_covers_the_scope_they_joined_from(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    joined(await a.join("den", 1))
    joined(await b.join("den", 2, address="2001:db8:1:2::7"))
    joined(await b.join("den", 3, address="2001:db8:9:9::1"))
    until = T0 + 3600 * 1_000_000
    # Node a's copy of member 2 has no address: the ban names none, the scope stored at the join is banned.
    changed = joined(await a.rooms.ban("den", 1, BanRecord(2, "u2", "", until), T0))
    [banned] = [e for _, e in changed.events if isinstance(e, Banned)]
    assert banned.ban == BanRecord(2, "u2", "2001:db8:1:2::/64", until)
    fresh = await a.join("den", 77, T0 + 1, address="2001:db8:1:2:aaaa::1")  # a new identity, same /64
    assert isinstance(fresh, Refused) and fresh.reason == BANNED_HERE and fresh.ban and fresh.ban.user_id == 2
    joined(await a.join("den", 78, T0 + 1, address="2001:db8:1:3::1"))  # another /64
    # A kick the same way, of a member who went on to the lobby and then another room: still their scope.
    joined(await b.join("jam", 3, T0 + 2, address="2001:db8:9:9::1"))
    joined(await b.join("den", 3, T0 + 3, address="2001:db8:9:9::1"))
    kicked = joined(await a.rooms.ban("den", 1, BanRecord(3, "u3", "", until, kick=True), T0 + 4))
    assert [e.ban.address for _, e in kicked.events if isinstance(e, Banned)] == ["2001:db8:9:9::/64"]
    # The scope goes with the member: once they left every room, a ban of them names no address.
    joined(await b.rooms.leave("lobby", 2, pb.LEAVE_REASON_DISCONNECTED, T0 + 5))
    late = joined(await a.rooms.ban("den", 1, BanRecord(2, "u2", "", until), T0 + 6))
    assert [e.ban.address for _, e in late.events if isinstance(e, Banned)] == [""]
    joined(await b.join("den", 79, T0 + 7, address="2001:db8:1:2::8"))  # the stored scope is not banned now
    assert not await a.link.redis.hexists(keys.MEMBER_SCOPES, 2)


async def test_a_stale_settings_change_is_refused(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await b.hold("den")
    joined(await a.join("den", 1))
    joined(await b.join("den", 2))
    change = joined(await a.rooms.change_settings("den", 1, 1, SettingsChange(user_limit=8), T0))
    [(_, event)] = change.events
    assert isinstance(event, SettingsChanged) and (event.version, event.user_limit) == (2, 8)
    stale = await a.rooms.change_settings("den", 1, 1, SettingsChange(visible=False), T0)
    assert stale == Refused(STALE, version=2)
    assert await b.rooms.change_settings("den", 2, 2, SettingsChange(visible=False), T0) == Refused(NOT_OWNER)
    joined(await a.rooms.change_settings("den", 1, 2, SettingsChange(password_hash="h$1"), T0))
    await b.until(lambda: len(b.seen("den")) == 5)
    last = b.seen("den")[-1]
    assert isinstance(last, SettingsChanged) and (last.version, last.password_hash, last.user_limit) == (
        3, "h$1", 8
    )  # fmt: skip
    assert await b.join("den", 3) == Refused(LOCKED)
    joined(await b.join("den", 3, verified_hash="h$1"))  # the caller checked the password against h$1
    # A password set as a pending marker (hashed off the loop) and its hash, as the core does it.
    joined(await a.rooms.change_settings("den", 1, 3, SettingsChange(password_hash="pending:7"), T0))
    assert (await a.rooms.password_hashed("den", "pending:6", "h$6", T0)).events == ()  # superseded
    hashed = joined(await a.rooms.password_hashed("den", "pending:7", "h$7", T0))
    assert [(e.pending, e.password_hash) for _, e in hashed.events if isinstance(e, PasswordHashed)] == [
        ("pending:7", "h$7")
    ]
    den = await b.rooms.snapshot("den")
    assert den is not None and (den.record.password_hash, den.version) == ("h$7", 4)
    assert await b.join("nowhere", 4, create=False) == Refused(GONE)


async def test_a_dead_nodes_users_leave_every_room_once_and_the_crown_moves_on(
    nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    a, b = nodes
    await a.hold("den", "jam")
    await b.hold("den", "jam")
    c = make_node(redis_server.url, "node-c")  # never started: it only runs scripts, then "dies"
    try:
        joined(await c.join("den", 10, T0))  # the owner
        joined(await a.join("den", 20, T0 + 1))
        joined(await b.join("den", 21, T0 + 2))
        joined(await c.join("den", 11, T0 + 3))
        joined(await c.join("jam", 12, T0 + 4))
        joined(await a.join("jam", 22, T0 + 5))
    finally:
        await c.link.redis.aclose()
    dead_at = T0 + 10
    removed = await b.rooms.remove_node("node-c", dead_at)
    assert sorted((room, e.user_id) for room, e in removed.events if isinstance(e, Left)) == [
        ("den", 10), ("den", 11), ("jam", 12)
    ]  # fmt: skip
    assert {e.reason for _, e in removed.events if isinstance(e, Left)} == {pb.LEAVE_REASON_DISCONNECTED}
    assert (await a.rooms.remove_node("node-c", dead_at)).events == ()  # once
    owner_left = next(e for _, e in removed.events if isinstance(e, Left) and e.user_id == 10)
    assert owner_left.crown == Crown(0, 10, dead_at + GRACE)
    assert (await a.rooms.crown_due("den", dead_at + GRACE - 1)).events == ()
    assert await a.rooms.claim_crown("den", 21, dead_at + GRACE - 1) == Refused(
        TAKEN, crown=Crown(0, 10, dead_at + GRACE)
    )
    due = await asyncio.gather(*(n.rooms.crown_due("den", dead_at + GRACE) for n in (a, b, a, b)))
    passed = [e for d in due for _, e in d.events]
    assert passed == [Crowned(passed[0].seq, dead_at + GRACE, 20, 0, DUE)]  # the one here longest
    jam = await a.rooms.snapshot("jam")
    assert jam is not None and [m.user_id for m in jam.members] == [22]
    assert jam.crown == Crown(0, 12, dead_at + GRACE)  # owner 12's crown waits, as on one node
    await a.until(lambda: len(a.seen("den")) == 8)
    await b.until(lambda: len(b.seen("den")) == 8 and len(b.seen("jam")) == 4)
    assert a.seen("den") == b.seen("den") and a.seen("jam") == b.seen("jam")
    assert await a.link.redis.exists("pr:node-members:node-c") == 0


async def test_a_member_who_reconnects_to_another_node_is_not_removed_with_the_old_one(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    joined(await a.join("den", 1))
    joined(await a.join("den", 2))
    moved = joined(await b.join("den", 2))  # already a member: now held by node-b, every node told so
    assert [(e.user_id, e.node) for _, e in moved.events if isinstance(e, Joined)] == [(2, "node-b")]
    old_connection = await a.rooms.leave("den", 2, pb.LEAVE_REASON_DISCONNECTED, T0 + 4)
    assert old_connection == Changed()  # a holds 2 no more: nothing happens
    removed = await b.rooms.remove_node("node-a", T0 + 5)
    assert [(e.user_id) for _, e in removed.events if isinstance(e, Left)] == [1]
    snapshot = await b.rooms.snapshot("den")
    assert snapshot is not None and [(m.user_id, m.node) for m in snapshot.members] == [(2, "node-b")]


async def test_crown_give_claim_and_the_owner_coming_back_in_time(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    joined(await a.join("den", 1))
    joined(await b.join("den", 2, T0 + 1))
    joined(await b.join("den", 3, T0 + 2))
    assert (await b.rooms.give_crown("den", 2, 3, T0)) == Refused(NOT_OWNER, crown=Crown(1, 0, 0))
    gave = joined(await a.rooms.give_crown("den", 1, 2, T0 + 3))
    assert [(e.user_id, e.by_user) for _, e in gave.events if isinstance(e, Crowned)] == [(2, 1)]
    left = joined(await b.rooms.leave("den", 2, pb.LEAVE_REASON_DISCONNECTED, T0 + 4))
    assert [e.crown for _, e in left.events if isinstance(e, Left)] == [Crown(0, 2, T0 + 4 + GRACE)]
    back = joined(await a.join("den", 2, T0 + 5))  # back in time: the crown is theirs again
    assert [e.crown for _, e in back.events if isinstance(e, Joined)] == [Crown(2, 0, 0)]
    joined(await a.rooms.leave("den", 2, pb.LEAVE_REASON_LEFT, T0 + 6))  # by a, the node holding 2 now
    assert isinstance(await a.rooms.claim_crown("den", 3, T0 + 6), Refused)
    claimed = joined(await a.rooms.claim_crown("den", 3, T0 + 6 + GRACE))
    assert [(e.user_id, e.cause) for _, e in claimed.events if isinstance(e, Crowned)] == [(3, CLAIM)]
    # Everyone leaves: the record keeps its owner, who waits for nobody when coming back first...
    for user, node in ((1, a), (3, b)):
        joined(await node.rooms.leave("den", user, pb.LEAVE_REASON_LEFT, T0 + 7 + GRACE))
    stored = await a.rooms.snapshot("den")
    assert stored is not None and stored.members == () and stored.record.owner_id == 3
    assert stored.record.last_used_us == T0 + 7 + GRACE
    # ...while anyone else coming back first waits `grace` for them, as on one node.
    first = joined(await b.join("den", 1, T0 + 8 + GRACE))
    assert [e.crown for _, e in first.events if isinstance(e, Joined)] == [Crown(0, 3, T0 + 8 + 2 * GRACE)]


async def test_room_list_deltas_are_the_same_on_both_nodes_and_match_the_list(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await a.link.settled()
    await b.link.settled()
    joined(await a.join("lobby", 1))
    joined(await a.join("den", 2))
    joined(await b.join("den", 3))
    joined(await b.join("jam", 4, settings=SettingsChange(visible=False)))
    joined(await a.rooms.change_settings("den", 2, 1, SettingsChange(password_hash="h"), T0))
    joined(await a.rooms.leave("den", 2, pb.LEAVE_REASON_LEFT, T0))  # the owner's name leaves the summary
    joined(await b.join("lobby", 3))  # den empties: removed from the list
    seq, listed = await a.rooms.room_list()
    for node in nodes:
        await node.until(lambda n=node: bool(n.deltas) and n.deltas[-1].seq == seq)  # type: ignore[misc]
    assert a.deltas == b.deltas
    assert [d.seq for d in a.deltas] == list(range(1, seq + 1))
    replayed: dict[str, RoomSummary] = {}
    for delta in a.deltas:
        for summary in delta.upserted:
            replayed[summary.name] = summary
        for name in delta.removed:
            del replayed[name]
    assert tuple(sorted(replayed.values())) == listed == (RoomSummary("lobby", 2, 0, False, "", True),)
    den = [s for d in a.deltas for s in d.upserted if s.name == "den"]
    assert den[-2:] == [("den", 2, 50, True, "u2", False), ("den", 1, 50, True, "", False)]
    assert all(s.name != "jam" for d in a.deltas for s in d.upserted)  # hidden


def test_a_malformed_event_is_refused_in_words() -> None:
    with pytest.raises(BadEvent, match="format 9"):
        decode_event(bytes([9, 1]) + bytes(16))
    with pytest.raises(BadEvent, match="cut short"):
        decode_event(bytes([1, 1]) + bytes(10))
    with pytest.raises(BadEvent, match="unknown room event kind 42"):
        decode_event(bytes([1, 42]) + bytes(16))


async def test_presence_reports_a_dead_node_and_one_call_removes_exactly_its_users(
    nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    a, b = nodes
    reported: list[tuple[str, frozenset[int]]] = []
    survivor = Presence(a.link.redis, "node-a", on_node_dead=lambda n, u: reported.append((n, u)))
    c = make_node(redis_server.url, "node-c")
    dying = Presence(c.link.redis, "node-c", on_node_dead=lambda n, u: None)
    try:
        await survivor.start()
        await dying.start()
        for user, room in [(10, "den"), (11, "jam"), (12, "den")]:
            await dying.claim(user)
            joined(await c.join(room, user))
        await survivor.claim(20)
        joined(await a.join("den", 20, T0 + 1))
    finally:
        await c.link.redis.aclose()
    await a.link.redis.delete("pr:node:node-c")  # its key lapsed (as after kill -9 and the TTL)
    await survivor.sweep()
    assert reported == [("node-c", frozenset({10, 11, 12}))]
    removed = await a.rooms.remove_node("node-c", T0 + 2)
    assert {e.user_id for _, e in removed.events if isinstance(e, Left)} == reported[0][1]
    den = await b.rooms.snapshot("den")
    assert den is not None and [m.user_id for m in den.members] == [20]
    assert await a.link.redis.keys("pr:member:*") == [b"pr:member:20"]
    assert await a.link.redis.exists("pr:room-members:jam") == 0  # an empty room has no membership...
    jam = await a.rooms.snapshot("jam")
    assert jam is not None and jam.record.owner_id == 11  # ...and keeps its record


async def test_a_node_that_starts_holding_a_room_mid_stream_catches_up_from_a_snapshot(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    for user in range(1, 6):
        joined(await a.join("den", user, T0 + user))
    busy = asyncio.gather(*(a.join("den", user, T0 + user) for user in range(6, 30)))
    await b.hold("den")  # subscribe first, then read: no event falls between the two
    snapshot = await b.rooms.snapshot("den")
    await busy
    assert snapshot and set(range(1, 6)) <= {m.user_id for m in snapshot.members}  # those joined before
    members = {m.user_id for m in snapshot.members}
    final = await a.rooms.snapshot("den")
    assert final and final.seq >= snapshot.seq  # the snapshot is never ahead of the room
    await b.until(lambda: bool(b.seen("den")) and b.seen("den")[-1].seq == final.seq)
    later = [e for e in b.seen("den") if e.seq > snapshot.seq]
    assert [e.seq for e in later] == list(range(snapshot.seq + 1, final.seq + 1))  # no gap
    members |= {e.user_id for e in later if isinstance(e, Joined)}
    assert members == {m.user_id for m in final.members} == set(range(1, 30))


async def test_members_of_a_dead_node_whose_reaper_died_too_are_removed_by_any_later_sweep(
    nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    a, b = nodes
    presences = {
        name: Presence(node.link.redis, name, on_node_dead=lambda n, u: None)
        for name, node in (("node-a", a), ("node-b", b))
    }
    for presence in presences.values():
        await presence.start()
    c = make_node(redis_server.url, "node-c")
    try:
        await Presence(c.link.redis, "node-c", on_node_dead=lambda n, u: None).start()
        joined(await c.join("den", 10))
    finally:
        await c.link.redis.aclose()
    joined(await a.join("den", 20, T0 + 1))
    joined(await b.join("jam", 21, T0 + 1))
    assert (await b.rooms.remove_dead_nodes(T0 + 2)).events == ()  # everyone alive
    await a.link.redis.delete("pr:node:node-c")  # node-c lapsed...
    assert (await b.rooms.remove_dead_nodes(T0 + 2)).events == ()  # ...not reaped yet: its reaper's job
    await presences["node-a"].sweep()  # node-a reaps node-c, then dies before removing its members
    removed = await b.rooms.remove_dead_nodes(T0 + 3)
    assert [(room, e.user_id) for room, e in removed.events if isinstance(e, Left)] == [("den", 10)]
    assert (await a.rooms.remove_dead_nodes(T0 + 4)).events == ()
    den = await a.rooms.snapshot("den")
    assert den is not None and [m.user_id for m in den.members] == [20]


async def test_a_closed_room_sends_its_members_to_the_lobby_and_is_gone(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await b.hold("den", "lobby")
    joined(await a.join("den", 1))
    joined(await b.join("den", 2, T0 + 1))
    joined(await a.rooms.ban("den", 1, BanRecord(3, "u3", "", T0 + 10**9), T0 + 2))
    closed = joined(await a.rooms.close_room("den", T0 + 3))
    assert [(room, type(e).__name__) for room, e in closed.events] == [
        ("den", "Closed"), ("den", "Left"), ("lobby", "SettingsChanged"), ("lobby", "Joined"),
        ("den", "Left"), ("lobby", "Joined"),
    ]  # fmt: skip
    assert {e.reason for _, e in closed.events if isinstance(e, Left)} == {pb.LEAVE_REASON_KICKED}
    assert await a.rooms.snapshot("den") is None
    assert await b.join("den", 2, create=False) == Refused(GONE)
    assert await a.rooms.close_room("den", T0 + 4) == Refused(GONE)
    _, listed = await a.rooms.room_list()
    assert [s.name for s in listed] == ["lobby"]
    again = joined(await b.join("den", 3, T0 + 5))  # a new room of that name, without the old ban
    assert again.events[0][1].seq == closed.events[4][1].seq + 1  # numbered on: no node sees seq 1 twice
    await b.until(lambda: b.seen("den")[-1].seq == again.events[-1][1].seq)


async def test_a_mute_made_on_one_node_is_published_and_kept_in_the_snapshot_while_it_lasts(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await b.hold("den")
    for user, node in ((1, a), (2, b), (3, b)):
        joined(await node.join("den", user, T0 + user))
    until = T0 + 60 * 10**6
    muted = joined(await a.rooms.mute("den", 1, 2, until, T0 + 5))
    assert [(e.by_user, e.user_id, e.until_us) for _, e in muted.events if isinstance(e, Muted)] == [
        (1, 2, until)
    ]
    joined(await a.rooms.mute("den", 1, 3, -1, T0 + 6))  # until they leave
    assert await b.rooms.mute("den", 2, 3, -1, T0 + 7) == Refused(NOT_OWNER)
    assert await a.rooms.mute("den", 1, 9, -1, T0 + 7) == Refused(NOT_MEMBER)
    assert await a.rooms.mute("den", 1, 1, -1, T0 + 7) == Refused(SELF)
    assert await a.rooms.mute("lobby", 1, 2, -1, T0 + 7) == Refused(GONE)
    den = await b.rooms.snapshot("den")
    assert den is not None and den.mutes == ((2, until), (3, -1))
    await b.until(lambda: sum(isinstance(e, Muted) for e in b.seen("den")) == 2)
    # Leaving ends a mute until they leave, not a timed one; unmuting ends it; an emptied room keeps none.
    await b.rooms.leave("den", 3, pb.LEAVE_REASON_LEFT, T0 + 8)
    await b.rooms.leave("den", 2, pb.LEAVE_REASON_LEFT, T0 + 8)
    joined(await b.join("den", 2, T0 + 9))
    assert (den := await a.rooms.snapshot("den")) is not None and den.mutes == ((2, until),)
    joined(await a.rooms.mute("den", 1, 2, 0, T0 + 10))
    assert (den := await a.rooms.snapshot("den")) is not None and den.mutes == ()
    joined(await a.rooms.mute("den", 1, 2, until, T0 + 11))
    for user, node in ((1, a), (2, b)):
        await node.rooms.leave("den", user, pb.LEAVE_REASON_LEFT, T0 + 12)
    joined(await a.join("den", 1, T0 + 13))
    assert (den := await a.rooms.snapshot("den")) is not None and den.mutes == ()


async def test_a_member_update_is_stored_and_published_in_order(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await b.hold("den")
    joined(await a.join("den", 1, profile=b"status=online"))
    updated = joined(await a.rooms.update_member("den", 1, "ann", b"status=away", T0 + 1))
    assert [(e.user_id, e.name, e.profile) for _, e in updated.events if isinstance(e, MemberUpdated)] == [
        (1, "ann", b"status=away")
    ]
    assert (await a.rooms.update_member("den", 2, "bob", b"", T0 + 1)).events == ()  # not a member
    den = await b.rooms.snapshot("den")
    assert den is not None and [(m.name, m.profile) for m in den.members] == [("ann", b"status=away")]
    _, listed = await b.rooms.room_list()
    assert listed[0].owner_name == "ann"
    await b.until(lambda: len(b.seen("den")) == 3)


async def test_an_empty_room_is_forgotten_after_the_expiry_unless_entered_again(
    nodes: tuple[Node, Node],
) -> None:
    a, _ = nodes
    rooms = Rooms(a.link.redis, "node-a", room_expiry_s=60)
    await rooms.join("den", 1, name="ann", address="10.0.0.1", now_us=T0)
    joined(await rooms.ban("den", 1, BanRecord(2, "u2", "", T0 + 10**9), T0))
    assert await a.link.redis.pttl("pr:room-info:den") == -1
    await rooms.leave("den", 1, pb.LEAVE_REASON_LEFT, T0 + 1)
    assert 0 < await a.link.redis.pttl("pr:room-info:den") <= 60_000
    assert 0 < await a.link.redis.pttl("pr:room-bans:den") <= 60_000
    await rooms.join("den", 1, name="ann", address="10.0.0.1", now_us=T0 + 2)
    assert await a.link.redis.pttl("pr:room-info:den") == -1 == await a.link.redis.pttl("pr:room-bans:den")


async def test_after_a_redis_restart_room_events_and_list_deltas_arrive_again(
    nodes: tuple[Node, Node], redis_server: RedisServer
) -> None:
    a, b = nodes
    await a.hold("den")
    await b.hold("den")
    joined(await a.join("den", 1))
    await b.until(lambda: len(b.seen("den")) == 2 and len(b.deltas) == 1)
    await asyncio.to_thread(redis_server.restart)  # the data stays (append-only file)
    async with asyncio.timeout(WITHIN):
        for node in nodes:
            await node.back.wait()
            await node.link.settled()
    joined(await b.join("den", 2, T0 + 1))
    for node in nodes:
        await node.until(lambda n=node: len(n.seen("den")) == 3 and len(n.deltas) == 2)  # type: ignore[misc]
        assert [e.seq for e in node.seen("den")] == [1, 2, 3] and [d.seq for d in node.deltas] == [1, 2]


async def test_a_removal_touching_many_rooms_publishes_the_list_in_bounded_deltas(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    await b.link.settled()
    await asyncio.gather(*(a.join(f"room {i}", i) for i in range(1, LIST_CHUNK + 2)))
    await b.until(lambda: len(b.deltas) == LIST_CHUNK + 1)
    removed = await b.rooms.remove_node("node-a", T0 + 1)
    assert len(removed.events) == LIST_CHUNK + 1
    await b.until(lambda: len(b.deltas) == LIST_CHUNK + 3)
    last_two = b.deltas[-2:]
    assert [len(d.removed) for d in last_two] == [LIST_CHUNK, 1]
    assert [d.seq for d in last_two] == [LIST_CHUNK + 2, LIST_CHUNK + 3]
    assert await b.rooms.room_list() == (LIST_CHUNK + 3, ())
