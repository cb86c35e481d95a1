"""Issue 11 item 2, the room level on many nodes, in the core: room changes are asked of the directory
(Ask actions) and applied when their events come back (RelayCore.room_event, in the room's order); members
on other nodes are member records, so presence, room state and note fan-out include them. The test plays
the directory (Redis): it answers asks by feeding events, as the scripts of server/cluster/rooms.py publish
them."""

from __future__ import annotations

import itertools

from pianorhythm.server.core.actions import (
    AskClose,
    AskCrownDue,
    AskJoin,
    AskLeave,
    AskMute,
    AskUpdateMember,
    Broadcast,
    ClearChat,
    SaveChat,
)
from pianorhythm.server.core.crypto import PENDING_PREFIX
from pianorhythm.server.core.events import (
    Banned,
    Closed,
    Crowned,
    Joined,
    Left,
    Member,
    MemberUpdated,
    Muted,
    SettingsChanged,
    Unbanned,
)
from pianorhythm.server.core.models import LOBBY
from pianorhythm.server.core.records import BanRecord, ChatRecord, RoomRecord
from pianorhythm.server.core.state import Summary
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, Harness, notes

NODE = "a"
OTHER = "b"


def remote(user_id: int, name: str, at_us: int, color: str = "#123456") -> Member:
    profile = pb.User(id=user_id, name=name, color=color, instrument=7).SerializeToString()
    return Member(user_id, OTHER, at_us, name, profile)


def local(h: Harness, sid: int) -> Member:
    return Member(h.user_id(sid), NODE, h.now, h.core.state.sessions[sid].name, b"")


def seated(h: Harness, name: str, seq: int) -> int:
    """A user connected here, seated in the lobby by its Joined event (seq), the lobby followed from 0."""
    sid = h.connect(name)
    if not h.core.follows(LOBBY):
        h.run(h.core.install_room(RoomRecord(LOBBY), 0, (0, 0, 0), (), h.now))
    uid = h.user_id(sid)
    h.run(h.core.room_event(Joined(LOBBY, uid, h.now, local(h, sid), (0, 0, 0)), seq, h.now))
    return sid


def test_a_join_is_asked_and_answered_when_its_event_comes_back() -> None:
    h = Harness(node=NODE)
    sid = h.connect("ann")
    uid = h.user_id(sid)
    assert h.asks == [AskJoin(LOBBY, uid, "ann", "10.0.0.1", h.asks[0].profile)]  # type: ignore[union-attr]
    profile = pb.User.FromString(h.asks[0].profile)  # type: ignore[union-attr]
    assert (profile.id, profile.name) == (uid, "ann")
    assert h.kinds(sid) == []  # no room yet: the directory has not answered
    h.run(h.core.install_room(RoomRecord(LOBBY), 3, (0, 0, 0), (), h.now))
    h.run(h.core.room_event(Joined(LOBBY, uid, h.now, local(h, sid), (0, 0, 0)), 4, h.now))
    state = h.take(sid, "room_state")[0].room_state
    assert state.name == LOBBY and [u.id for u in state.users] == [uid]
    assert h.members[LOBBY] == {uid: sid}


def test_members_on_another_node_are_seen_joining_leaving_and_in_the_room_state() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.clear(ann)
    h.run(h.core.room_event(Joined(LOBBY, 900, h.now, remote(900, "bob", h.now), (0, 0, 0)), 2, h.now))
    joined = h.take(ann, "user_joined")[0].user_joined.user
    assert (joined.id, joined.name, joined.color, joined.instrument) == (900, "bob", "#123456", 7)
    late = seated(h, "cid", 3)
    state = h.take(late, "room_state")[0].room_state
    assert [u.id for u in state.users] == [h.user_id(ann), 900, h.user_id(late)]
    h.clear(ann, late)
    h.run(h.core.room_event(Left(LOBBY, 900, pb.LEAVE_REASON_DISCONNECTED, h.now, (0, 0, 0)), 4, h.now))
    assert [m.user_left.user_id for m in h.take(ann, "user_left")] == [900]
    assert [m.user_left.reason for m in h.take(late, "user_left")] == [pb.LEAVE_REASON_DISCONNECTED]
    assert 900 not in h.core.state.rooms[LOBBY].members


def test_notes_fan_out_to_members_on_other_nodes_too() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.run(h.core.handle(ann, pb.ClientMessage(note_batch=notes((0, 60, 100))), h.now))
    assert h.core.state.counters["note_events"] == 1  # played, but nobody to hear it: no broadcast
    h.run(h.core.room_event(Joined(LOBBY, 900, h.now, remote(900, "bob", h.now), (0, 0, 0)), 2, h.now))
    actions = h.core.handle(ann, pb.ClientMessage(note_batch=notes((0, 62, 100))), h.now)
    broadcasts = [a for a in actions if isinstance(a, Broadcast)]
    assert [(b.room, b.except_user) for b in broadcasts] == [(LOBBY, h.user_id(ann))]
    relayed = pb.ServerMessage.FromString(broadcasts[0].payload).notes
    assert [e.note.key for e in relayed.events] == [62]


def test_events_already_in_the_snapshot_or_for_rooms_not_followed_are_ignored() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 5)
    h.clear(ann)
    h.run(h.core.room_event(Joined(LOBBY, 900, h.now, remote(900, "bob", h.now), (0, 0, 0)), 5, h.now))
    h.run(h.core.room_event(Joined("den", 901, h.now, remote(901, "cy", h.now), (901, 0, 0)), 9, h.now))
    assert h.kinds(ann) == []
    assert 900 not in h.core.state.rooms[LOBBY].members and not h.core.follows("den")


def test_a_replica_from_a_snapshot_seats_the_asking_member_with_its_ref() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    uid = h.user_id(ann)
    h.asks.clear()
    h.clear(ann)
    h.send(ann, ref=42, join_room=pb.JoinRoom(name="den"))
    assert [(a.room, a.user_id) for a in h.asks if isinstance(a, AskJoin)] == [("den", uid)]
    assert h.core.needs("den")
    # The script moved ann (her Left from the lobby is still on its way): the snapshot has her in den.
    members = (remote(900, "bob", h.now - SEC), local(h, ann))
    h.run(h.core.install_room(RoomRecord("den", user_limit=8), 7, (900, 0, 0), members, h.now))
    state = h.take(ann, "room_state")[0]
    assert state.ref == 42 and state.room_state.name == "den" and state.room_state.owner_id == 900
    assert [u.id for u in state.room_state.users] == [900, uid]
    assert h.members["den"] == {uid: ann} and uid not in h.members[LOBBY]
    h.run(h.core.room_event(Left(LOBBY, uid, pb.LEAVE_REASON_LEFT, h.now, (0, 0, 0)), 2, h.now))
    assert h.take(ann, "room_state") == [] and h.core.state.sessions[ann].room.name == "den"  # type: ignore[union-attr]
    h.run(h.core.drop_room(LOBBY))
    assert not h.core.follows(LOBBY) and not h.core.needs(LOBBY)


def test_a_refused_join_is_an_error_and_one_left_in_no_room_goes_to_the_lobby() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    uid = h.user_id(ann)
    h.asks.clear()
    h.send(ann, ref=5, join_room=pb.JoinRoom(name="den"))
    h.run(h.core.join_refused(uid, "den", "full", h.now))
    error = h.take(ann, "error")[0]
    assert (error.ref, error.error.code) == (5, pb.ERROR_CODE_ROOM_FULL)
    assert h.asks == [h.asks[0]] and not h.core.needs("den")  # still in the lobby: nothing more asked
    fresh = h.connect("cid")  # asked for the lobby, refused: no room at all
    h.run(h.core.join_refused(h.user_id(fresh), LOBBY, "error", h.now))
    assert h.take(fresh, "error")[0].error.code == pb.ERROR_CODE_INTERNAL


def test_disconnect_asks_to_leave_the_room_and_any_join_still_asked() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    uid = h.user_id(ann)
    h.send(ann, join_room=pb.JoinRoom(name="den"))
    h.asks.clear()
    h.disconnect(ann)
    assert h.asks == [
        AskLeave("den", uid, pb.LEAVE_REASON_DISCONNECTED),
        AskLeave(LOBBY, uid, pb.LEAVE_REASON_DISCONNECTED),
    ]
    assert not h.core.needs("den")
    # Its Left comes back: gone from the replica and the delivery maps.
    h.run(h.core.room_event(Left(LOBBY, uid, pb.LEAVE_REASON_DISCONNECTED, h.now, (0, 0, 0)), 2, h.now))
    assert uid not in h.core.state.rooms[LOBBY].members and uid not in h.members[LOBBY]


def test_the_crown_follows_the_directory_and_its_hand_over_is_asked_once() -> None:
    h = Harness(node=NODE, crown_grace_s=15)
    ann = seated(h, "ann", 1)
    uid = h.user_id(ann)
    h.send(ann, join_room=pb.JoinRoom(name="den"))
    owner = remote(900, "bob", h.now - SEC)
    h.run(h.core.install_room(RoomRecord("den"), 4, (900, 0, 0), (owner, local(h, ann)), h.now))
    h.clear(ann)
    claim = h.now + 15 * SEC
    h.run(h.core.room_event(Left("den", 900, pb.LEAVE_REASON_DISCONNECTED, h.now, (0, 900, claim)), 5, h.now))
    updated = h.take(ann, "room_updated")[0].room_updated
    assert (updated.owner_id, updated.crown_claimable_at_us) == (0, claim)
    h.asks.clear()
    h.advance(15)
    h.tick()
    h.tick()
    assert h.asks == [AskCrownDue("den")]  # once: the directory passes it, on whichever node asks
    assert h.core.state.rooms["den"].owner_id == 0
    h.run(h.core.room_event(Crowned("den", uid), 6, h.now))
    assert h.take(ann, "room_updated")[0].room_updated.owner_id == uid


def in_den_owned_by_ann(h: Harness) -> tuple[int, int]:
    """ann (here) owns den; bob (user 900) is there from node b."""
    ann = seated(h, "ann", 1)
    h.send(ann, join_room=pb.JoinRoom(name="den"))
    bob = remote(900, "bob", h.now + 1)
    h.run(h.core.install_room(RoomRecord("den"), 4, (h.user_id(ann), 0, 0), (local(h, ann), bob), h.now))
    h.asks.clear()
    h.clear(ann)
    return ann, h.user_id(ann)


def test_owner_powers_over_a_member_on_another_node_are_asked_of_the_directory() -> None:
    h = Harness(node=NODE)
    ann, uid = in_den_owned_by_ann(h)
    h.send(ann, ref=1, give_ownership=pb.GiveOwnership(user_id=900))
    h.send(ann, ref=2, kick_user=pb.KickUser(user_id=900))
    h.send(ann, ref=3, ban_user=pb.BanUser(user_id=900, duration_s=60))
    assert [type(a).__name__ for a in h.asks] == ["AskCrown", "AskBan", "AskBan"]
    crown, kick, ban = h.asks
    assert (crown.room, crown.by_user, crown.to_user, crown.ref) == ("den", uid, 900, 1)  # type: ignore[union-attr]
    assert kick.ban.kick and kick.ban.user_id == 900 and kick.ref == 2  # type: ignore[union-attr]
    assert not ban.ban.kick and ban.ban.until_us == h.now + 60 * SEC  # type: ignore[union-attr]
    assert h.kinds(ann) == [] and h.core.state.rooms["den"].record.bans == {}  # nothing until it comes back
    h.run(h.core.refused(uid, 1, "not_member", h.now))
    error = h.take(ann, "error")[0]
    assert (error.ref, error.error.code) == (1, pb.ERROR_CODE_USER_NOT_FOUND)


def test_a_member_here_banned_from_another_node_is_told_and_follows_to_the_lobby() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.send(ann, join_room=pb.JoinRoom(name="den"))
    owner = remote(900, "bob", h.now - SEC)
    h.run(h.core.install_room(RoomRecord("den"), 4, (900, 0, 0), (owner, local(h, ann)), h.now))
    h.run(h.core.room_event(Left(LOBBY, h.user_id(ann), pb.LEAVE_REASON_LEFT, h.now, (0, 0, 0)), 2, h.now))
    h.clear(ann)
    uid = h.user_id(ann)
    ban = BanRecord(uid, "ann", "10.0.0.1", h.now + 60 * SEC)
    h.run(h.core.room_event(Banned("den", ban, 900), 5, h.now))
    removed = h.take(ann, "removed")[0].removed
    assert (removed.reason, removed.room, removed.by_user_id, removed.duration_s) == (
        pb.REMOVAL_REASON_BANNED, "den", 900, 60,
    )  # fmt: skip
    h.run(h.core.room_event(Left("den", uid, pb.LEAVE_REASON_BANNED, h.now, (900, 0, 0)), 6, h.now))
    assert h.core.needs(LOBBY)  # the directory moved her there: this node follows the lobby for her
    h.run(h.core.room_event(Joined(LOBBY, uid, h.now, local(h, ann), (0, 0, 0)), 3, h.now))
    assert h.take(ann, "room_state")[0].room_state.name == LOBBY
    assert h.core.state.rooms["den"].record.bans[uid] == ban


def test_an_unban_is_answered_with_the_ban_list_when_its_event_comes_back() -> None:
    h = Harness(node=NODE)
    ann, uid = in_den_owned_by_ann(h)
    ban = BanRecord(77, "cy", "", h.now + 60 * SEC)
    h.run(h.core.room_event(Banned("den", ban, uid), 5, h.now))
    h.send(ann, ref=8, unban_user=pb.UnbanUser(user_id=77))
    assert [(type(a).__name__, a.ref) for a in h.asks] == [("AskUnban", 8)]  # type: ignore[union-attr]
    assert h.kinds(ann) == []
    h.run(h.core.room_event(Unbanned("den", (77,), uid), 6, h.now))
    answer = h.take(ann, "ban_list")[0]
    assert answer.ref == 8 and list(answer.ban_list.bans) == []


def test_settings_are_asked_against_their_version_and_confirmed_when_the_event_comes_back() -> None:
    h = Harness(node=NODE)
    ann, uid = in_den_owned_by_ann(h)
    change = pb.RoomSettingsChange(user_limit=5, password="sesame")
    h.defer_passwords = True
    h.send(ann, ref=4, update_room_settings=pb.UpdateRoomSettings(settings=change))
    h.run_password_jobs()  # off the loop, so after the settings were asked for
    asked, hashed = h.asks
    assert type(hashed).__name__ == "AskPasswordHashed" and hashed.room == "den"
    assert type(asked).__name__ == "AskSettings"
    assert (asked.version, asked.user_limit, asked.ref) == (0, 5, 4)  # type: ignore[union-attr]
    assert asked.password_hash == hashed.pending  # type: ignore[union-attr]  # locked meanwhile
    assert h.kinds(ann) == []
    event = SettingsChanged("den", uid, True, asked.password_hash, 5, True, False, 1)  # type: ignore[union-attr]
    h.run(h.core.room_event(event, 5, h.now))
    confirmed = h.take(ann, "room_updated")[0]
    assert confirmed.ref == 4 and confirmed.room_updated.settings.user_limit == 5
    assert confirmed.room_updated.settings.locked and h.core.state.rooms["den"].version == 1
    h.send(
        ann, ref=6, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(visible=False))
    )
    assert h.asks[-1].version == 1  # type: ignore[union-attr]
    h.run(h.core.refused(uid, 6, "stale", h.now))
    assert h.take(ann, "error")[0].error.code == pb.ERROR_CODE_INVALID_ARGUMENT


def test_a_join_that_may_create_a_room_carries_its_settings_and_an_unchecked_password() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.asks.clear()
    h.defer_passwords = True
    settings = pb.RoomSettingsChange(password="sesame", user_limit=3, visible=False)
    h.send(ann, ref=1, join_room=pb.JoinRoom(name="vault", settings=settings))
    h.send(ann, ref=2, join_room=pb.JoinRoom(name="attic", password="open"))
    vault, attic = h.asks
    assert isinstance(vault, AskJoin) and isinstance(attic, AskJoin)
    assert vault.settings is not None and vault.settings.password_hash.startswith(PENDING_PREFIX)
    assert (vault.settings.user_limit, vault.settings.visible, vault.password) == (3, False, "")
    assert (attic.settings, attic.password) == (None, "open")  # checked by the shell if attic is locked
    assert [type(job).__name__ for job in h.password_jobs] == ["HashPassword"]


def test_a_members_update_is_told_on_each_node_with_its_copy_so_a_joiner_never_gets_it_stale() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.run(h.core.room_event(Joined(LOBBY, 900, h.now, remote(900, "bob", h.now), (0, 0, 0)), 2, h.now))
    h.asks.clear()
    h.clear(ann)
    h.send(ann, update_instrument=pb.UpdateInstrument(program=19))
    (asked,) = h.asks
    assert isinstance(asked, AskUpdateMember) and (asked.room, asked.name) == (LOBBY, "ann")
    assert pb.User.FromString(asked.profile).instrument == 19
    assert h.kinds(ann) == []  # told when the event comes back, as every node tells its own clients
    h.run(h.core.room_event(MemberUpdated(LOBBY, h.user_id(ann), "ann", asked.profile), 3, h.now))
    assert [m.user_updated.user.instrument for m in h.take(ann, "user_updated")] == [19]
    # bob's update, from node b: no client here hears of it before this node's copy of bob has it, so a
    # player who enters between the two (the race of a fan-out a few ms ahead) cannot get bob as he was.
    profile = pb.User(id=900, name="bob", color="#654321", status=pb.STATUS_AWAY, instrument=40)
    h.run(h.core.room_event(MemberUpdated(LOBBY, 900, "bob", profile.SerializeToString()), 4, h.now))
    told = h.take(ann, "user_updated")[0].user_updated.user
    assert (told.id, told.color, told.status, told.instrument) == (900, "#654321", pb.STATUS_AWAY, 40)
    late = seated(h, "cid", 5)
    bob = [u for u in h.take(late, "room_state")[0].room_state.users if u.id == 900][0]
    assert (bob.color, bob.status, bob.instrument) == ("#654321", pb.STATUS_AWAY, 40)


def test_a_members_update_the_directory_could_not_take_is_told_here_all_the_same() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    cid = seated(h, "cid", 2)
    h.clear(ann, cid)
    h.send(ann, update_status=pb.UpdateStatus(status=pb.STATUS_BUSY))
    assert h.kinds(cid) == []
    h.run(h.core.member_unshared(h.user_id(ann), LOBBY, h.now))
    told = h.take(cid, "user_updated")[0].user_updated.user
    assert (told.id, told.status) == (h.user_id(ann), pb.STATUS_BUSY)
    h.run(h.core.member_unshared(h.user_id(ann), "den", h.now))  # she is not in den: nothing
    assert h.kinds(cid) == []


def summary(name: str, count: int, owner: str = "", *, limit: int = 50, locked: bool = False) -> Summary:
    return (name, count, 0 if name == LOBBY else limit, locked, owner, name == LOBBY)


def listed(message: pb.ServerMessage) -> list[tuple[str, int, int, bool, str]]:
    rooms = message.room_list.rooms if message.HasField("room_list") else message.room_list_delta.upserted
    return [(r.name, r.member_count, r.user_limit, r.locked, r.owner_name) for r in rooms]


def test_the_room_list_is_the_directorys_read_at_start_and_followed_by_its_deltas() -> None:
    h = Harness(node=NODE)
    assert h.list_reads == 1  # at start
    ann = seated(h, "ann", 1)
    h.send(ann, ref=3, room_list_subscribe=pb.RoomListSubscribe())
    assert listed(h.take(ann, "room_list")[0]) == []  # not read yet: nothing of this node's own
    h.clear(ann)
    # The list as read: den has members on node b only, locked, owned by bob; a delta that came while it
    # was read (seq 8) waits for it, one already in it (seq 7) changes nothing.
    h.run(h.core.room_list_delta(8, [summary("den", 2, "bob", locked=True)], [], h.now))
    h.run(h.core.room_list_delta(7, [summary("den", 9, "bob")], [], h.now))
    assert h.kinds(ann) == []
    h.run(h.core.room_list(7, [summary(LOBBY, 2), summary("den", 1, "bob", locked=True, limit=8)], h.now))
    first, then = h.take(ann, "room_list_delta")
    assert listed(first) == [("den", 1, 8, True, "bob"), (LOBBY, 2, 0, False, "")]
    assert listed(then) == [("den", 2, 50, True, "bob")]
    # Live: a delta numbered on is told; this node's own changes make none (the directory's say it all).
    h.run(h.core.room_list_delta(9, [], ["den"], h.now))
    assert list(h.take(ann, "room_list_delta")[0].room_list_delta.removed) == ["den"]
    h.send(ann, join_room=pb.JoinRoom(name="attic"))
    h.run(h.core.install_room(RoomRecord("attic"), 1, (h.user_id(ann), 0, 0), (local(h, ann),), h.now))
    assert h.take(ann, "room_list_delta") == []
    late = seated(h, "cid", 2)
    h.send(late, ref=4, room_list_subscribe=pb.RoomListSubscribe())
    assert listed(h.take(late, "room_list")[0]) == [(LOBBY, 2, 0, False, "")]


def test_a_lost_room_list_delta_or_a_link_back_reads_the_list_again() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.run(h.core.room_list(3, [summary(LOBBY, 1), summary("den", 1, "bob")], h.now))
    h.send(ann, room_list_subscribe=pb.RoomListSubscribe())
    h.clear(ann)
    h.run(h.core.room_list_delta(5, [summary("hall", 1, "cy")], [], h.now))  # 4 never came
    assert h.list_reads == 2 and h.kinds(ann) == []
    h.run(h.core.room_list(6, [summary(LOBBY, 1), summary("hall", 1, "cy")], h.now))
    delta = h.take(ann, "room_list_delta")[0].room_list_delta
    assert [r.name for r in delta.upserted] == ["hall"] and list(delta.removed) == ["den"]
    h.run(h.core.room_list(4, [summary(LOBBY, 1)], h.now))  # an older read, answered late: ignored
    assert h.kinds(ann) == [] and sorted(h.core.state.listed) == ["hall", LOBBY]
    h.run(h.core.reread_room_list())
    assert h.list_reads == 3
    h.run(h.core.room_list(6, [summary(LOBBY, 1), summary("hall", 1, "cy")], h.now))
    assert h.kinds(ann) == []  # nothing changed meanwhile: nothing to tell


def test_an_admins_close_is_asked_and_its_members_here_are_told_and_follow_to_the_lobby() -> None:
    h = Harness(node=NODE)
    ann, uid = in_den_owned_by_ann(h)
    admin = seated(h, "root", 9)
    h.asks.clear()
    command = pb.ServerCommand(name="close_room", args=["den"], admin_token="secret")
    h.send(admin, ref=12, server_command=command)
    assert h.asks == [AskClose("den", h.user_id(admin), 12)]
    assert h.take(admin, "command_result") == []  # answered when the directory has closed it
    h.run(h.core.room_event(Closed("den"), 5, h.now))
    removed = h.take(ann, "removed")[0].removed
    assert (removed.reason, removed.room) == (pb.REMOVAL_REASON_ROOM_CLOSED, "den")
    assert h.core.needs(LOBBY)
    for seq, who in ((6, uid), (7, 900)):
        h.run(h.core.room_event(Left("den", who, pb.LEAVE_REASON_KICKED, h.now, (0, 0, 0)), seq, h.now))
    h.run(h.core.room_event(Joined(LOBBY, uid, h.now, local(h, ann), (0, 0, 0)), 10, h.now))
    assert h.take(ann, "room_state")[0].room_state.name == LOBBY
    h.run(h.core.room_closed(h.user_id(admin), 12, "den", 2, h.now))
    result = h.take(admin, "command_result")[0]
    assert result.ref == 12 and result.command_result.ok
    assert (
        result.command_result.output
        == "Closed den: 2 players sent to the lobby; its settings and bans are deleted."
    )
    h.run(h.core.room_closed(h.user_id(admin), 13, "nowhere", None, h.now))
    assert h.take(admin, "command_result")[0].command_result.output == "No room named nowhere."
    h.send(
        admin, ref=14, server_command=pb.ServerCommand(name="close_room", args=[LOBBY], admin_token="secret")
    )
    assert not h.take(admin, "command_result")[0].command_result.ok and len(h.asks) == 1


def test_a_mute_is_asked_and_holds_here_when_its_event_comes_back_also_from_a_snapshot() -> None:
    h = Harness(node=NODE)
    ann, uid = in_den_owned_by_ann(h)
    h.send(ann, ref=2, mute_user=pb.MuteUser(user_id=900, duration_s=60))
    assert h.asks == [AskMute("den", uid, 900, h.now + 60 * SEC, 2)]
    assert not h.core.state.rooms["den"].is_muted(900, h.now)  # not until it comes back
    h.run(h.core.room_event(Muted("den", 900, h.now + 60 * SEC), 5, h.now))
    assert h.take(ann, "user_updated")[0].user_updated.user.muted
    # A member here muted from node b: refused chat and typing here, on her node.
    cid = seated(h, "cid", 2)
    h.send(cid, join_room=pb.JoinRoom(name="den"))
    h.run(h.core.room_event(Joined("den", h.user_id(cid), h.now, local(h, cid), None), 6, h.now))
    h.run(h.core.room_event(Muted("den", h.user_id(cid), -1), 7, h.now))
    h.clear(ann, cid)
    h.send(cid, ref=3, chat_send=pb.ChatSend(content="hello"))
    assert h.take(cid, "error")[0].error.code == pb.ERROR_CODE_MUTED
    h.run(h.core.refused(uid, 2, "not_member", h.now))
    assert h.take(ann, "error")[0].error.code == pb.ERROR_CODE_USER_NOT_FOUND
    # A node that starts following den later reads the mutes with its snapshot.
    other = Harness(node=NODE)
    dan = seated(other, "dan", 1)
    other.send(dan, join_room=pb.JoinRoom(name="den"))
    other.clear(dan)
    members = (remote(900, "bob", other.now), local(other, dan))
    mutes = ((900, other.now + 60 * SEC),)
    other.run(other.core.install_room(RoomRecord("den"), 9, (0, 0, 0), members, other.now, 1, mutes))
    state = other.take(dan, "room_state")[0].room_state
    assert [(u.id, u.muted) for u in state.users] == [(900, True), (other.user_id(dan), False)]


def test_the_recent_chat_of_a_room_state_is_the_rooms_stream_with_lines_from_every_node() -> None:
    h = Harness(node=NODE)
    ann = seated(h, "ann", 1)
    h.send(ann, ref=1, join_room=pb.JoinRoom(name="den"))
    h.clear(ann)
    stream = [ChatRecord(i, "den", 900, "bob", "#123456", f"line {i}", h.now) for i in (3, 5)]
    members = (remote(900, "bob", h.now), local(h, ann))
    h.run(h.core.install_room(RoomRecord("den"), 4, (900, 0, 0), members, h.now, history=stream))
    state = h.take(ann, "room_state")[0].room_state
    assert [c.id for c in state.chat_history] == [3, 5]
    # Lines stored on other nodes come on the room's channel in id order: each goes to the members here and
    # joins the recent chat, once (a line the snapshot's read of the stream already had is not doubled).
    for line_id in (6, 8, 5):
        line = ChatRecord(line_id, "den", 900, "bob", "#123456", f"line {line_id}", h.now)
        h.run(h.core.chat_stored((line,), 0, 0))
    h.run(h.core.chat_stored((ChatRecord(9, "hall", 900, "bob", "#123456", "not followed", h.now),), 0, 0))
    assert [(m.ref, m.chat_message.id) for m in h.take(ann, "chat_message")] == [(0, 6), (0, 8), (0, 5)]
    h.send(ann, ref=2, join_room=pb.JoinRoom(name="den"))
    assert [c.id for c in h.take(ann, "room_state")[0].room_state.chat_history] == [3, 5, 6, 8]
    h.chat_ids = itertools.count(10)  # the directory's counter, shared by every node
    h.send(ann, ref=5, chat_send=pb.ChatSend(content="mine"))
    assert [(m.ref, m.chat_message.id) for m in h.take(ann, "chat_message")] == [(5, 10)]
    assert [c.id for c in h.core.state.rooms["den"].history] == [3, 5, 6, 8, 10]
    h.fail_chat = True  # Redis down: never stored, so never sent, nor recent chat here
    h.send(ann, ref=6, chat_send=pb.ChatSend(content="lost"))
    assert h.take(ann, "chat_message") == [] and len(h.core.state.rooms["den"].history) == 5
    h.run(h.core.chat_cleared("den", h.now))  # an admin on another node cleared it: ann is told here
    cleared = h.take(ann, "room_state")[0].room_state
    assert cleared.name == "den" and len(cleared.users) == 2 and list(cleared.chat_history) == []
    h.send(ann, ref=3, join_room=pb.JoinRoom(name="den"))
    assert [c.id for c in h.take(ann, "room_state")[0].room_state.chat_history] == []
    assert not h.core.needs_chat("hall")  # the replica comes with its chat: nothing to preload


def test_an_admins_broadcast_and_clear_chat_reach_rooms_whose_members_are_all_on_other_nodes() -> None:
    h = Harness(node=NODE)
    root = seated(h, "root", 1)
    h.run(h.core.room_list(3, [summary(LOBBY, 2), summary("hall", 1, "cy")], h.now))
    h.chat_ids = itertools.count(40)  # the directory's counter, shared by every node
    h.clear(root)

    def command(ref: int, name: str, *args: str) -> str:
        h.send(root, ref=ref, server_command=pb.ServerCommand(name=name, args=args, admin_token="secret"))
        return h.take(root, "command_result")[0].command_result.output

    assert command(5, "broadcast", "maintenance at noon") == "Sent to 2 rooms."
    # One line per room, hall's too: storing it publishes it on hall's channel, for node b's members.
    (saved,) = [store for store in h.stored if isinstance(store, SaveChat)]
    assert [(r.id, r.room, r.user_id, r.content) for r in saved.lines] == [
        (0, LOBBY, 0, "maintenance at noon"), (0, "hall", 0, "maintenance at noon")
    ]  # numbered where they are stored  # fmt: skip
    assert (saved.sender, saved.user_id, saved.ref) == (0, h.user_id(root), 5)
    assert [m.chat_message.id for m in h.take(root, "chat_message")] == [40]
    assert [c.id for c in h.core.state.rooms[LOBBY].history] == [40]
    assert "hall" not in h.core.state.rooms  # no copy of it made here
    h.broadcasts.clear()
    assert command(6, "clear_chat", "hall") == "Cleared the chat of hall."
    assert h.stored[-1] == ClearChat("hall")
    [cleared] = h.broadcasts  # its nodes clear their copies and tell their members (RelayCore.chat_cleared)
    assert cleared.room == "hall" and cleared.chat
    assert pb.ServerMessage.FromString(cleared.payload).room_state.name == "hall"
    assert command(7, "clear_chat", "nowhere") == "No room named nowhere."  # not listed: as on one node
