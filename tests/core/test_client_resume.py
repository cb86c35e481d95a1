"""Resume after a drop, through the client core with injected time (tests/core/client_harness.py)."""

from pianorhythm.client import model as m
from pianorhythm.client.effects import LOCAL, AddPlayer, Notify, PlayLocal, ReleasePlayer, SaveToken
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.core.client_harness import ClientHarness, user

ANN, BOB, CAT, DAN = user(1, "ann"), user(2, "bob"), user(3, "cat"), user(4, "dan")


def in_jam() -> ClientHarness:
    h = ClientHarness(room="jam")
    h.connect(token="tok-1")
    h.enter("lobby", ANN, is_lobby=True)
    h.enter("jam", ANN, BOB, CAT)
    h.take()
    return h


def test_the_first_hello_has_no_token_and_the_welcomes_token_is_saved():
    h = ClientHarness()
    hello = h.connect(token="tok-1")
    assert hello.name == "ann" and hello.resume_token == ""
    assert h.saved_tokens() == ["tok-1"]
    assert AddPlayer(LOCAL, "ann", 0) in h.effects  # our own recorder track
    assert [e.resumed for e in h.told(m.Welcomed)] == [False]


def test_a_saved_token_is_sent_in_the_first_hello():
    assert ClientHarness(token="saved").connect().resume_token == "saved"


def test_a_fresh_connection_goes_back_to_the_room_asked_for():
    h = ClientHarness(room="jam", password="pw")
    h.connect()
    h.enter("lobby", ANN, is_lobby=True)
    joins = h.sent("join_room")
    assert [(j.join_room.name, j.join_room.password) for j in joins] == [("jam", "pw")]
    assert [e.room.name for e in h.told(m.RoomEntered)] == ["lobby"]  # the lobby still shows meanwhile


def test_a_drop_releases_every_player_and_is_told():
    h = in_jam()
    h.drop("the server went away")
    assert h.released() == [ReleasePlayer(2), ReleasePlayer(3)]  # their notes stop; they stay known
    reconnecting = m.ConnectionChanged(m.ConnectionState.RECONNECTING, "the server went away")
    assert h.told(m.ConnectionChanged) == [reconnecting]
    assert h.core.send_chat("hello?") == []  # nothing can be sent while the link is down
    played = h.core.local_input(MusicEvent(EventKind.NOTE, 60, 90, h.now), h.now)
    assert [type(e) for e in played] == [PlayLocal, Notify]  # we still hear ourselves
    assert not h.core.link.has_pending  # but nothing is queued for a link that is down


def test_resume_reuses_the_token_rejoins_the_room_and_says_who_came_and_went():
    h = in_jam()
    h.drop()
    h.advance(1500)
    h.take()
    hello = h.connect(token="tok-2", resumed=True)
    assert hello.resume_token == "tok-1"  # the last Welcome's token
    assert h.saved_tokens() == ["tok-2"]
    h.enter("jam", ANN, BOB, DAN)  # the relay restored our room: no JoinRoom needed
    assert h.sent("join_room") == []
    [entered] = h.told(m.RoomEntered)
    assert entered.resumed
    assert [u.name for u in entered.came] == ["dan"] and [u.name for u in entered.went] == ["cat"]
    assert ReleasePlayer(3, forget=True) in h.released()  # cat's channel is freed, its notes released
    assert sorted(h.core.players) == [2, 4]
    assert AddPlayer(4, "dan", 0) in h.effects


def test_resume_into_a_lost_room_rejoins_it_and_the_rejoin_is_not_a_resume():
    h = in_jam()
    h.drop()
    h.connect(token="tok-2", resumed=False)
    h.enter("lobby", ANN, is_lobby=True)
    assert [j.join_room.name for j in h.sent("join_room")] == ["jam"]
    h.enter("jam", ANN, BOB, DAN)
    assert [e.resumed for e in h.told(m.RoomEntered)] == [False, True]
    back = h.told(m.RoomEntered)[-1]  # compared with the members when the link dropped, not the lobby's
    assert [u.name for u in back.came] == ["dan"] and [u.name for u in back.went] == ["cat"]


def test_a_chosen_name_is_taken_back_after_a_resume_and_a_fallback_name_is_not():
    h = ClientHarness(name="ann")
    h.connect()
    h.drop()
    h.take()
    h.connect(resumed=True, name="someone")
    assert [p.update_profile.name for p in h.sent("update_profile")] == ["ann"]

    fallback = ClientHarness(name="bot-1234", name_is_fallback=True)
    fallback.connect(resumed=True, name="kept")
    assert fallback.sent("update_profile") == []


def test_a_rename_is_what_the_next_resume_takes_back():
    h = ClientHarness(name="ann")
    h.connect()
    h.receive(user_updated=pb.UserUpdated(user=user(1, "annie")))
    h.drop()
    h.take()
    h.connect(resumed=True, name="ann")
    assert [p.update_profile.name for p in h.sent("update_profile")] == ["annie"]


def test_the_instrument_is_sent_again_after_a_reconnect():
    h = ClientHarness()
    h.connect()
    h.core.set_instrument(19)
    h.drop()
    h.take()
    h.connect(resumed=True)
    assert [u.update_instrument.program for u in h.sent("update_instrument")] == [19]


def test_a_refused_hello_ends_the_link_for_good():
    h = ClientHarness()
    h.run(h.core.link_up(h.now))
    h.receive(error=pb.Error(code=pb.ERROR_CODE_BANNED, message="banned for 10 min"))
    assert h.refusals() == ["banned for 10 min"]
    assert not h.core.link.welcomed and not h.told(m.ServerError)


def test_a_token_saved_is_only_what_a_welcome_gave():
    h = ClientHarness()
    h.connect(token="")
    assert h.of(SaveToken, h.effects) == []
