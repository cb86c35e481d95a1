"""Relay core room rules: joining, the crown, owner powers, room list deltas (no event loop)."""

from __future__ import annotations

from pianorhythm.server.core.actions import SaveRoom
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import Harness, notes


def _join(
    h: Harness, sid: int, name: str, password: str = "", settings: dict[str, object] | None = None
) -> None:
    change = pb.RoomSettingsChange(**settings) if settings else None  # type: ignore[arg-type]
    h.send(sid, join_room=pb.JoinRoom(name=name, password=password, settings=change))


def test_join_creates_a_room_owned_by_the_joiner_and_tells_everyone() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "  jazz  ")
    h.clear(a, b)
    _join(h, b, "jazz")
    [state] = h.take(b, "room_state")
    assert state.room_state.name == "jazz"
    assert state.room_state.owner_id == h.user_id(a)
    assert [u.name for u in state.room_state.users] == ["a", "b"]
    [joined] = h.take(a, "user_joined")
    assert joined.user_joined.user.id == h.user_id(b)
    h.send(b, leave_room=pb.LeaveRoom())
    [left] = h.take(a, "user_left")
    assert (left.user_left.user_id, left.user_left.reason) == (h.user_id(b), pb.LEAVE_REASON_LEFT)
    assert h.take(b, "room_state")[0].room_state.is_lobby


def test_room_names_are_validated() -> None:
    h = Harness()
    a = h.connect("a")
    h.clear(a)
    for bad in ("", "   ", "x" * 65, "tab\there"):
        _join(h, a, bad)
        assert h.take(a)[0].error.code == pb.ERROR_CODE_INVALID_ARGUMENT


def test_empty_rooms_are_removed_but_their_settings_persist_for_the_owner() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "private", settings={"password": "pw", "user_limit": 5})
    h.send(a, leave_room=pb.LeaveRoom())
    assert "private" not in h.core.state.rooms
    h.clear(b)
    _join(h, b, "private")
    assert h.take(b, "error")[0].error.code == pb.ERROR_CODE_WRONG_PASSWORD
    _join(h, a, "private")  # the owner needs no password and gets the crown back
    state = h.take(a, "room_state")[-1].room_state
    assert state.owner_id == h.user_id(a) and state.settings.locked and state.settings.user_limit == 5


def test_password_room_rejects_wrong_and_missing_passwords() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "secret", settings={"password": "hunter2"})
    saved = [s.room for s in h.stored if isinstance(s, SaveRoom)][-1]
    assert saved.password_hash and "hunter2" not in saved.password_hash
    h.clear(b)
    for attempt in ("", "wrong"):
        _join(h, b, "secret", password=attempt)
        assert h.take(b)[0].error.code == pb.ERROR_CODE_WRONG_PASSWORD
    _join(h, b, "secret", password="hunter2")
    assert h.take(b, "room_state")[0].room_state.name == "secret"


def test_user_limit_makes_a_room_full() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "duo", settings={"user_limit": 1})
    h.clear(b)
    _join(h, b, "duo")
    assert h.take(b)[0].error.code == pb.ERROR_CODE_ROOM_FULL


def test_only_the_owner_changes_settings_and_members_see_room_updated() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.clear(a, b)
    h.send(b, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(visible=False)))
    assert h.take(b)[0].error.code == pb.ERROR_CODE_NOT_OWNER
    change = pb.RoomSettingsChange(chat_enabled=False, owner_only_play=True)
    h.send(a, update_room_settings=pb.UpdateRoomSettings(settings=change))
    [updated] = h.take(b, "room_updated")
    assert not updated.room_updated.settings.chat_enabled and updated.room_updated.settings.owner_only_play
    h.send(b, chat_send=pb.ChatSend(content="hello"))
    assert h.take(b)[0].error.code == pb.ERROR_CODE_CHAT_DISABLED
    h.send(b, note_batch=notes((0, 60, 80)))
    assert h.take(b)[0].error.code == pb.ERROR_CODE_OWNER_ONLY_PLAY
    assert h.take(a, "notes") == []
    h.send(a, note_batch=notes((0, 60, 80)))
    assert len(h.take(b, "notes")) == 1
    h.send(a, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(user_limit=101)))
    assert h.take(a, "error")[0].error.code == pb.ERROR_CODE_INVALID_ARGUMENT


def test_crown_goes_to_the_longest_present_member_15_s_after_the_owner_leaves() -> None:
    h = Harness()
    a, b, c = h.connect("a"), h.connect("b"), h.connect("c")
    for sid in (a, b, c):
        _join(h, sid, "r")
        h.advance(1)
    h.clear(a, b, c)
    h.disconnect(a)
    updated = h.take(b, "room_updated")[0].room_updated
    assert updated.owner_id == 0 and updated.crown_claimable_at_us == h.now + 15_000_000
    h.advance(14)
    h.send(c, claim_crown=pb.ClaimCrown())
    assert h.take(c, "error")[0].error.code == pb.ERROR_CODE_NOT_OWNER
    h.tick()
    assert h.take(b, "room_updated") == []
    h.advance(1)
    assert h.core.next_deadline() == h.now
    h.tick()
    assert h.take(c, "room_updated")[-1].room_updated.owner_id == h.user_id(b)


def test_the_owner_gets_the_crown_back_by_returning_within_15_s() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.send(a, leave_room=pb.LeaveRoom())
    h.advance(10)
    h.clear(b)
    _join(h, a, "r")
    assert h.take(b, "room_updated")[0].room_updated.owner_id == h.user_id(a)
    h.advance(10)
    h.tick()
    assert h.core.state.rooms["r"].owner_id == h.user_id(a)


def test_claim_crown_after_the_grace_period() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.disconnect(a)
    h.advance(15)
    h.clear(b)
    h.send(b, claim_crown=pb.ClaimCrown())
    assert h.take(b, "room_updated")[0].room_updated.owner_id == h.user_id(b)


def test_crown_refusals_say_who_holds_it_and_how_long_it_waits() -> None:
    h = Harness()
    a, b, c = h.connect("a"), h.connect("b"), h.connect("c")
    for sid in (a, b, c):
        _join(h, sid, "r")
        h.advance(1)
    h.clear(a, b, c)
    h.send(a, claim_crown=pb.ClaimCrown())
    assert h.take(a, "error")[0].error.message == "You already hold the crown."
    h.send(b, claim_crown=pb.ClaimCrown())
    assert h.take(b, "error")[0].error.message == "a holds the crown; only they can give it away."
    h.disconnect(a)
    h.advance(2.5)
    h.send(c, claim_crown=pb.ClaimCrown())
    assert h.take(c, "error")[0].error.message == (
        "The crown waits 13 s more for its owner to come back; then it passes to b, here longest."
    )


def test_a_settings_change_answers_the_owner_and_tells_the_others() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.clear(a, b)
    change = pb.RoomSettingsChange(user_limit=8, visible=False)
    h.send(a, ref=7, update_room_settings=pb.UpdateRoomSettings(settings=change))
    [mine] = h.take(a, "room_updated")
    [theirs] = h.take(b, "room_updated")
    assert (mine.ref, theirs.ref) == (7, 0)  # the owner's copy answers the request: a confirmation
    assert mine.room_updated == theirs.room_updated
    assert theirs.room_updated.settings.user_limit == 8 and not theirs.room_updated.settings.visible


def test_give_ownership() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.clear(a, b)
    h.send(a, give_ownership=pb.GiveOwnership(user_id=h.user_id(b)))
    assert h.take(a, "room_updated")[0].room_updated.owner_id == h.user_id(b)
    h.send(a, give_ownership=pb.GiveOwnership(user_id=h.user_id(b)))
    assert h.take(a)[0].error.code == pb.ERROR_CODE_NOT_OWNER


def test_kick_sends_the_member_to_the_lobby() -> None:
    h = Harness()
    a, b, c = h.connect("a"), h.connect("b"), h.connect("c")
    for sid in (a, b, c):
        _join(h, sid, "r")
    h.clear(a, b, c)
    h.send(b, kick_user=pb.KickUser(user_id=h.user_id(c)))
    assert h.take(b)[0].error.code == pb.ERROR_CODE_NOT_OWNER
    h.send(a, kick_user=pb.KickUser(user_id=h.user_id(c)))
    assert h.kinds(c)[:2] == ["removed", "room_state"]
    assert h.take(c, "removed")[0].removed.reason == pb.REMOVAL_REASON_KICKED
    assert h.take(c, "room_state")[0].room_state.is_lobby
    assert h.take(b, "user_left")[0].user_left.reason == pb.LEAVE_REASON_KICKED
    h.send(a, kick_user=pb.KickUser(user_id=999))
    assert h.take(a, "error")[0].error.code == pb.ERROR_CODE_USER_NOT_FOUND
    _join(h, c, "r")  # a kick is a short cool-down, not a ban
    error = h.take(c, "error")[0].error
    assert error.code == pb.ERROR_CODE_BANNED and "kicked" in error.message and "30 s" in error.message
    h.advance(30)
    _join(h, c, "r")
    assert h.take(c, "room_state")[0].room_state.name == "r"


def test_ban_blocks_rejoining_until_it_ends_or_is_lifted() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.clear(a, b)
    h.send(a, ban_user=pb.BanUser(user_id=h.user_id(b), duration_s=60))
    assert h.take(b, "removed")[0].removed.duration_s == 60
    assert h.take(a, "user_left")[0].user_left.reason == pb.LEAVE_REASON_BANNED
    _join(h, b, "r")
    assert h.take(b, "error")[0].error.code == pb.ERROR_CODE_BANNED
    h.advance(61)
    h.clear(b)
    _join(h, b, "r")
    assert h.take(b, "room_state")[0].room_state.name == "r"
    h.send(a, ban_user=pb.BanUser(user_id=h.user_id(b)))  # default: an hour
    h.send(a, unban_user=pb.UnbanUser(user_id=h.user_id(b)))
    h.clear(b)
    _join(h, b, "r")
    assert h.take(b, "room_state")[0].room_state.name == "r"


def test_mute_stops_chat_until_lifted() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, a, "r")
    _join(h, b, "r")
    h.clear(a, b)
    h.send(a, mute_user=pb.MuteUser(user_id=h.user_id(b)))
    assert h.take(a, "user_updated")[0].user_updated.user.muted
    h.send(b, chat_send=pb.ChatSend(content="hi"))
    assert h.take(b, "error")[0].error.code == pb.ERROR_CODE_MUTED
    h.send(a, mute_user=pb.MuteUser(user_id=h.user_id(b), unmute=True))
    h.send(b, chat_send=pb.ChatSend(content="hi"))
    assert h.take(a, "chat_message")[0].chat_message.content == "hi"
    h.send(a, mute_user=pb.MuteUser(user_id=h.user_id(b), duration_s=30))
    h.advance(31)
    h.send(b, chat_send=pb.ChatSend(content="free"))
    assert h.take(a, "chat_message")[0].chat_message.content == "free"


def test_room_list_subscription_sends_the_list_then_deltas() -> None:
    h = Harness()
    a, b, s = h.connect("a"), h.connect("b"), h.connect("watcher")
    _join(h, a, "visible")
    _join(h, b, "hidden", settings={"visible": False})
    h.clear(s)
    h.send(s, room_list_subscribe=pb.RoomListSubscribe())
    [listing] = h.take(s)
    rooms = {r.name: r for r in listing.room_list.rooms}
    assert set(rooms) == {"lobby", "visible"}
    assert rooms["visible"].member_count == 1 and rooms["visible"].owner_name == "a"
    assert rooms["lobby"].is_lobby and rooms["lobby"].member_count == 1
    _join(h, b, "visible")
    [delta] = h.take(s, "room_list_delta")
    counts = {r.name: r.member_count for r in delta.room_list_delta.upserted}
    assert counts == {"visible": 2}
    h.send(a, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(password="pw")))
    [delta] = h.take(s, "room_list_delta")
    assert delta.room_list_delta.upserted[0].locked
    h.send(a, leave_room=pb.LeaveRoom())
    h.send(b, leave_room=pb.LeaveRoom())
    removed = [d.room_list_delta for d in h.take(s, "room_list_delta")]
    assert removed[-1].removed == ["visible"]
    h.send(s, room_list_unsubscribe=pb.RoomListUnsubscribe())
    _join(h, a, "another")
    assert h.take(s, "room_list_delta") == []


def test_admin_can_close_a_room_and_clear_chat() -> None:
    h = Harness()
    a, b = h.connect("a"), h.connect("b")
    _join(h, b, "doomed")
    h.send(b, chat_send=pb.ChatSend(content="x"))
    h.clear(a, b)
    h.send(a, server_command=pb.ServerCommand(name="close_room", args=["doomed"], admin_token="secret"))
    assert h.take(a, "command_result")[0].command_result.output.startswith("Closed doomed: 1 player sent")
    assert h.take(b, "removed")[0].removed.reason == pb.REMOVAL_REASON_ROOM_CLOSED
    assert "doomed" not in h.core.state.rooms and "doomed" not in h.core.state.persisted
    h.send(a, chat_send=pb.ChatSend(content="lobby line"))
    h.clear(a, b)
    h.send(a, server_command=pb.ServerCommand(name="clear_chat", admin_token="secret"))
    assert list(h.take(b, "room_state")[0].room_state.chat_history) == []
