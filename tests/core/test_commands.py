import pytest

from pianorhythm.commands import (
    Admin,
    Ban,
    CommandError,
    Crown,
    Help,
    Kick,
    Mute,
    Nick,
    RoomSettingsCommand,
    SetColor,
    SetInstrument,
    SetLatency,
    SetStatus,
    Unban,
    parse_command,
    parse_duration,
)


def test_plain_chat_is_not_a_command():
    assert parse_command("hello") is None
    assert parse_command("//not a command") is None
    assert parse_command("  hi /there") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/help", Help("")),
        ("/help /kick", Help("kick")),
        ("/nick  Ada Lovelace ", Nick("Ada Lovelace")),
        ("/color #FF8800", SetColor("#ff8800")),
        ("/colour 00ff00", SetColor("#00ff00")),
        ("/status Away", SetStatus("away")),
        ("/instrument 40", SetInstrument("40")),
        ("/instrument acoustic grand", SetInstrument("acoustic grand")),
        ("/kick bob", Kick("bob")),
        ("/ban bob", Ban("bob", 0)),
        ("/ban bob 10m", Ban("bob", 600)),
        ("/ban Bob Smith 2h", Ban("Bob Smith", 7200)),
        ("/unban bob", Unban("bob")),
        ("/mute bob", Mute("bob", 0, False)),
        ("/mute bob 30", Mute("bob", 30, False)),
        ("/mute bob off", Mute("bob", 0, True)),
        ("/unmute bob", Mute("bob", 0, True)),
        ("/crown", Crown("")),
        ("/crown alice", Crown("alice")),
        ("/room", RoomSettingsCommand()),
        ("/room private=on password=s3cret limit=8", RoomSettingsCommand(False, "s3cret", 8, None, None)),
        ("/room chat=off ownerplay=yes", RoomSettingsCommand(None, None, None, False, True)),
        ("/latency SAFE", SetLatency("safe")),
        ("/NICK x", Nick("x")),
        ("/admin", Admin("help")),
        ("/admin login s3cr3t", Admin("login", ("s3cr3t",))),
        ("/admin LOGOUT", Admin("logout")),
        ("/admin close_room jam session", Admin("close_room", ("jam", "session"))),
    ],
)
def test_commands_parse(line, expected):
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "/nick",
        "/nick " + "x" * 33,
        "/color red",
        "/status sleeping",
        "/instrument",
        "/kick",
        "/ban",
        "/ban bob forever",
        "/ban bob 25h",
        "/mute bob 0",
        "/room chat",
        "/room chat=maybe",
        "/room limit=0",
        "/room limit=101",
        "/room colour=red",
        "/latency fast",
        "/dance",
        "/admin login",
        "/admin login two words",
    ],
)
def test_bad_commands_explain_themselves(line):
    result = parse_command(line)
    assert isinstance(result, CommandError)
    assert result.message.endswith(".") or result.message.endswith(")")


def test_room_query_flag():
    assert RoomSettingsCommand().is_query
    assert not RoomSettingsCommand(password="").is_query


def test_durations():
    assert parse_duration("90") == 90
    assert parse_duration("10m") == 600
    assert parse_duration("24h") == 86400
    assert parse_duration("25h") is None
    assert parse_duration("0") is None
    assert parse_duration("x") is None
