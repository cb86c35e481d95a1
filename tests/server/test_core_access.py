"""Passwords checked off the loop and throttled, bans that cover the address, names that cannot pass for
the server or for another member: the relay core with injected time."""

from __future__ import annotations

from typing import Any

from pianorhythm.server.core.actions import HashPassword, SaveRoom, VerifyPassword
from pianorhythm.server.core.address import ban_scope
from pianorhythm.server.core.crypto import check_password, hash_password
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.server.core_harness import SEC, Harness


def _join(h: Harness, sid: int, room: str, password: str = "", **settings: Any) -> None:
    change = pb.RoomSettingsChange(**settings) if settings else None
    h.send(sid, join_room=pb.JoinRoom(name=room, password=password, settings=change))


def _connect(h: Harness, name: str, ip: str) -> int:
    sid = h.core.open_session(ip, h.now).id
    h.send(sid, hello=pb.Hello(name=name))
    h.take(sid)
    return sid


def _locked_room(h: Harness, name: str = "vault", password: str = "pw") -> int:
    owner = _connect(h, "owner", "10.9.9.9")
    _join(h, owner, name)
    h.send(
        owner, update_room_settings=pb.UpdateRoomSettings(settings=pb.RoomSettingsChange(password=password))
    )
    h.run_password_jobs()
    h.take(owner)
    return owner


def _deferring() -> Harness:
    h = Harness()
    h.defer_passwords = True
    return h


def _error(h: Harness, sid: int) -> pb.Error:
    errors = h.take(sid, "error")
    assert errors, f"no error; got {h.kinds(sid)}"
    return errors[-1].error


# -- passwords --------------------------------------------------------------------------------------------


def test_a_password_is_checked_by_a_job_not_during_the_message() -> None:
    h = _deferring()
    _locked_room(h)
    guest = _connect(h, "guest", "10.0.0.2")
    _join(h, guest, "vault", password="pw")
    assert h.kinds(guest) == []  # nothing yet: the check runs elsewhere
    job = h.password_jobs[0]
    assert isinstance(job, VerifyPassword) and job.room == "vault" and job.stored.startswith("scrypt$")
    h.run_password_jobs()
    assert h.take(guest, "room_state")[0].room_state.name == "vault"
    _join(h, _connect(h, "other", "10.0.0.3"), "vault", password="nope")
    h.run_password_jobs()
    assert h.core.state.password_jobs == 0


def test_wrong_passwords_are_limited_per_address_with_a_retry_time() -> None:
    h = Harness()
    _locked_room(h)
    guesser = _connect(h, "guesser", "10.0.0.2")
    for _ in range(5):
        _join(h, guesser, "vault", password="wrong")
        assert _error(h, guesser).code == pb.ERROR_CODE_WRONG_PASSWORD
    _join(h, guesser, "vault", password="pw")  # even the right one waits now: guessing is the same act
    error = _error(h, guesser)
    assert error.code == pb.ERROR_CODE_RATE_LIMITED and 9_000 <= error.retry_after_ms <= 10_001
    assert "try again in 10 s" in error.message
    same_address = _connect(h, "fresh", "10.0.0.2")  # a new connection does not reset the count
    _join(h, same_address, "vault", password="wrong")
    assert _error(h, same_address).code == pb.ERROR_CODE_RATE_LIMITED
    other = _connect(h, "other", "10.0.0.3")
    _join(h, other, "vault", password="pw")
    assert h.take(other, "room_state")[0].room_state.name == "vault"
    h.advance(10)
    _join(h, guesser, "vault", password="pw")
    assert h.take(guesser, "room_state")[0].room_state.name == "vault"


def test_a_right_password_gives_its_attempt_back() -> None:
    h = Harness()
    _locked_room(h)
    member = _connect(h, "member", "10.0.0.2")
    for _ in range(8):  # more joins than the burst of 5: each right password refunds its attempt
        _join(h, member, "vault", password="pw")
        assert h.take(member, "room_state")[-1].room_state.name == "vault"
        h.send(member, leave_room=pb.LeaveRoom())
        h.take(member)


def test_checks_in_flight_count_against_the_room_at_once() -> None:
    h = _deferring()
    _locked_room(h)
    for i in range(12):
        _join(h, _connect(h, f"g{i}", f"10.1.0.{i}"), "vault", password="x")
    assert len(h.password_jobs) == 10  # the 11th and 12th were refused before any verdict came back
    right = _connect(h, "member", "10.2.0.1")
    h.advance(3)
    _join(h, right, "vault", password="pw")
    h.run_password_jobs()
    assert h.take(right, "room_state")[0].room_state.name == "vault"
    _join(h, _connect(h, "next", "10.2.0.2"), "vault", password="x")
    assert len(h.password_jobs) == 1  # the right password gave its token back: one more check may start


def test_wrong_passwords_are_limited_per_room() -> None:
    h = Harness()
    _locked_room(h)
    _locked_room(h, "other-vault")
    for i in range(10):
        guesser = _connect(h, f"g{i}", f"10.1.0.{i}")
        _join(h, guesser, "vault", password="wrong")
        assert _error(h, guesser).code == pb.ERROR_CODE_WRONG_PASSWORD
    late = _connect(h, "late", "10.2.0.1")
    _join(h, late, "vault", password="pw")
    error = _error(h, late)
    assert error.code == pb.ERROR_CODE_RATE_LIMITED and "this room" in error.message
    _join(h, late, "other-vault", password="pw")  # the other room is not affected
    assert h.take(late, "room_state")[0].room_state.name == "other-vault"
    h.advance(3)
    _join(h, late, "vault", password="pw")
    assert h.take(late, "room_state")[0].room_state.name == "vault"


def test_no_more_than_16_password_jobs_wait_at_once() -> None:
    h = _deferring()
    _locked_room(h)
    _locked_room(h, "other-vault")
    for i in range(16):  # 8 per room: each room allows 10 checks at once
        _join(h, _connect(h, f"g{i}", f"10.1.0.{i}"), "vault" if i % 2 else "other-vault", password="x")
    busy = _connect(h, "busy", "10.3.0.1")
    _join(h, busy, "vault", password="pw")
    error = _error(h, busy)
    assert (
        error.code == pb.ERROR_CODE_RATE_LIMITED and "busy" in error.message and error.retry_after_ms == 1000
    )
    assert len(h.password_jobs) == 16
    h.run_password_jobs()
    _join(h, busy, "vault", password="pw")
    h.run_password_jobs()
    assert h.take(busy, "room_state")[0].room_state.name == "vault"


def test_a_new_password_is_hashed_by_a_job_and_locks_the_room_meanwhile() -> None:
    h = _deferring()
    owner = _connect(h, "owner", "10.9.9.9")
    h.send(owner, join_room=pb.JoinRoom(name="vault", settings=pb.RoomSettingsChange(password="pw")))
    state = h.take(owner, "room_state")[0].room_state
    assert state.settings.locked
    [job] = h.password_jobs
    assert isinstance(job, HashPassword) and job.room == "vault"
    guest = _connect(h, "guest", "10.0.0.2")
    _join(h, guest, "vault", password="pw")
    h.run_password_jobs()  # the hash lands first, then the guest's check against the marker fails
    assert _error(h, guest).code == pb.ERROR_CODE_WRONG_PASSWORD
    stored = [s.room for s in h.stored if isinstance(s, SaveRoom)][-1].password_hash
    assert stored.startswith("scrypt$") and check_password("pw", stored) and not check_password("pW", stored)
    _join(h, guest, "vault", password="pw")
    h.run_password_jobs()
    assert h.take(guest, "room_state")[0].room_state.name == "vault"


def test_hashes_from_before_scrypt_still_verify() -> None:
    import hashlib

    salt = b"\x02" * 16
    old = f"pbkdf2$2000${salt.hex()}${hashlib.pbkdf2_hmac('sha256', b'pw', salt, 2000).hex()}"
    assert check_password("pw", old) and not check_password("px", old)
    assert not check_password("pw", "pending$3") and not check_password("pw", "scrypt$bad")
    assert check_password("pw", hash_password("pw", salt))


def test_idle_throttles_are_forgotten() -> None:
    h = Harness()
    _locked_room(h)
    guesser = _connect(h, "guesser", "10.0.0.2")
    _join(h, guesser, "vault", password="wrong")
    assert h.core.state.password_attempts.buckets and h.core.state.password_failures.buckets
    deadline = h.core.next_deadline()
    assert deadline is not None and deadline <= h.now + 60 * SEC
    h.advance(120)
    h.tick()
    assert not h.core.state.password_attempts.buckets and not h.core.state.password_failures.buckets


# -- bans -------------------------------------------------------------------------------------------------


def test_a_ban_covers_the_address_so_a_fresh_identity_stays_out() -> None:
    h = Harness()
    owner = _connect(h, "owner", "10.9.9.9")
    _join(h, owner, "club")
    pest = _connect(h, "pest", "10.0.0.66")
    _join(h, pest, "club")
    h.clear(owner, pest)
    h.send(owner, ban_user=pb.BanUser(user_id=h.user_id(pest), duration_s=600))
    assert h.take(pest, "removed")[0].removed.reason == pb.REMOVAL_REASON_BANNED
    h.disconnect(pest)
    fresh = _connect(h, "pest", "10.0.0.66")  # no token: a new user id, same address
    _join(h, fresh, "club")
    error = _error(h, fresh)
    assert error.code == pb.ERROR_CODE_BANNED and "10 more minute" in error.message
    elsewhere = _connect(h, "pest", "10.0.0.67")
    _join(h, elsewhere, "club")
    assert h.take(elsewhere, "room_state")[0].room_state.name == "club"
    h.advance(600)
    _join(h, fresh, "club")
    assert h.take(fresh, "room_state")[0].room_state.name == "club"


def test_an_ipv6_ban_covers_the_64() -> None:
    assert ban_scope("2001:db8::1") == ban_scope("2001:db8::ffff:1") == "2001:db8::/64"
    assert ban_scope("2001:db8:0:1::1") != ban_scope("2001:db8::1")
    assert ban_scope("::ffff:192.0.2.7") == "192.0.2.7" and ban_scope("192.0.2.7") == "192.0.2.7"
    h = Harness()
    owner = _connect(h, "owner", "10.9.9.9")
    _join(h, owner, "club")
    pest = _connect(h, "pest", "2001:db8::1")
    _join(h, pest, "club")
    h.send(owner, ban_user=pb.BanUser(user_id=h.user_id(pest)))
    neighbour = _connect(h, "next-door", "2001:db8::beef")
    _join(h, neighbour, "club")
    assert _error(h, neighbour).code == pb.ERROR_CODE_BANNED
    other_line = _connect(h, "far", "2001:db8:0:1::1")
    _join(h, other_line, "club")
    assert h.take(other_line, "room_state")[0].room_state.name == "club"


def test_the_owner_is_not_locked_out_by_a_ban_on_a_shared_address() -> None:
    h = Harness()
    owner = _connect(h, "owner", "10.0.0.5")
    _join(h, owner, "club")
    sibling = _connect(h, "sibling", "10.0.0.5")
    _join(h, sibling, "club")
    h.send(owner, ban_user=pb.BanUser(user_id=h.user_id(sibling)))
    h.send(owner, leave_room=pb.LeaveRoom())
    h.take(owner)
    _join(h, owner, "club")
    assert h.take(owner, "room_state")[0].room_state.name == "club"


def test_bans_lists_names_and_time_left_and_unban_takes_a_name() -> None:
    h = Harness()
    owner = _connect(h, "owner", "10.9.9.9")
    _join(h, owner, "club")
    a, b = _connect(h, "Ann", "10.0.0.2"), _connect(h, "bob", "10.0.0.3")
    for sid in (a, b):
        _join(h, sid, "club")
    h.send(owner, ban_user=pb.BanUser(user_id=h.user_id(a), duration_s=3600))
    h.send(owner, kick_user=pb.KickUser(user_id=h.user_id(b)))
    h.clear(owner)
    h.advance(10)
    h.send(owner, ref=7, list_bans=pb.ListBans())
    listing = h.take(owner, "ban_list")[0]
    assert listing.ref == 7
    assert [(e.name, e.remaining_s, e.kick) for e in listing.ban_list.bans] == [
        ("bob", 20, True),
        ("Ann", 3590, False),
    ]
    h.send(a, list_bans=pb.ListBans())
    assert _error(h, a).code == pb.ERROR_CODE_NOT_OWNER
    h.send(owner, unban_user=pb.UnbanUser(name="nobody"))
    error = _error(h, owner)
    assert error.code == pb.ERROR_CODE_USER_NOT_FOUND and "/bans" in error.message
    h.send(owner, unban_user=pb.UnbanUser(name="ANN"))
    assert [e.name for e in h.take(owner, "ban_list")[0].ban_list.bans] == ["bob"]
    _join(h, a, "club")
    assert h.take(a, "room_state")[0].room_state.name == "club"
    saved = [s.room for s in h.stored if isinstance(s, SaveRoom)][-1]
    assert [ban.user_id for ban in saved.bans] == [h.user_id(b)]


# -- names ------------------------------------------------------------------------------------------------


def test_reserved_names_are_refused_at_hello_and_on_rename() -> None:
    h = Harness()
    for name in ("server", "Server", "S.E.R.V.E.R", "ADMIN!", "system", "ann#12"):
        sid = h.open()
        h.send(sid, hello=pb.Hello(name=name))
        error = _error(h, sid)
        assert error.code == pb.ERROR_CODE_INVALID_ARGUMENT, name
        assert not h.core.state.sessions[sid].user_id
    ann = h.connect("ann")
    h.clear(ann)
    h.send(ann, update_profile=pb.UpdateProfile(name="Moderator"))
    assert "reserved" in _error(h, ann).message
    assert h.core.state.sessions[ann].name == "ann"
    for fine in ("servers", "ann", "#1 fan"):
        sid = h.open()
        h.send(sid, hello=pb.Hello(name=fine))
        assert h.take(sid, "welcome"), fine


def test_a_member_named_like_a_present_one_gets_a_visible_suffix() -> None:
    h = Harness()
    first = h.connect("Ann")
    h.clear(first)
    second = h.connect("ann")  # both in the lobby
    joined = h.take(first, "user_joined")[0].user_joined.user
    assert joined.name == f"ann#{h.user_id(second)}"
    h.send(second, chat_send=pb.ChatSend(content="hi"))
    line = h.take(first, "chat_message")[0].chat_message
    assert line.user_name == f"ann#{h.user_id(second)}" and not line.system
    _join(h, second, "elsewhere")  # alone there: no suffix
    assert h.take(second, "room_state")[-1].room_state.users[0].name == "ann"
    h.send(second, update_profile=pb.UpdateProfile(name="bob"))
    h.send(second, leave_room=pb.LeaveRoom())
    h.clear(first)
    h.send(first, update_profile=pb.UpdateProfile(name="BOB"))  # now taking a present member's name
    updated = h.take(first, "user_updated")[-1].user_updated.user
    assert updated.name == f"BOB#{h.user_id(first)}"


def test_server_broadcasts_are_system_notices_under_no_name() -> None:
    h = Harness()
    ann = h.connect("ann")
    h.clear(ann)
    h.send(
        ann, server_command=pb.ServerCommand(name="broadcast", args=["restart", "soon"], admin_token="secret")
    )
    line = h.take(ann, "chat_message")[0].chat_message
    assert line.system and line.user_id == 0 and line.user_name == "" and line.content == "restart soon"
