"""Chat commands: `/nick`, `/kick` ... parsed into typed values (pure: the caller acts on them).

A line that starts with "/" is a command; "//text" sends "/text" as chat. `parse_command` returns `None`
for plain chat, a command dataclass, or `CommandError` with one sentence for the user.
User arguments (`/kick NAME`) stay text: the room screen resolves them against its player list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

LATENCY_PRESETS: Final = ("low", "balanced", "safe")
STATUSES: Final = ("online", "away", "busy")
_COLOR = re.compile(r"^#?([0-9a-fA-F]{6})$")
_DURATION = re.compile(r"^(\d+)([smh]?)$")
_ON = {"on", "yes", "true", "1"}
_OFF = {"off", "no", "false", "0"}
MAX_BAN_S: Final = 86_400


@dataclass(frozen=True, slots=True)
class CommandError:
    message: str


@dataclass(frozen=True, slots=True)
class Help:
    topic: str = ""


@dataclass(frozen=True, slots=True)
class Nick:
    name: str


@dataclass(frozen=True, slots=True)
class SetColor:
    color: str  # "#rrggbb", lower case


@dataclass(frozen=True, slots=True)
class SetStatus:
    status: str  # one of STATUSES


@dataclass(frozen=True, slots=True)
class SetInstrument:
    query: str  # a GM program number 0-127 or part of an instrument name (resolved by the caller)


@dataclass(frozen=True, slots=True)
class Kick:
    user: str


@dataclass(frozen=True, slots=True)
class Ban:
    user: str
    duration_s: int = 0  # 0 = the server default


@dataclass(frozen=True, slots=True)
class Unban:
    user: str  # a name as /bans lists it


@dataclass(frozen=True, slots=True)
class ListBans:
    pass


@dataclass(frozen=True, slots=True)
class Mute:
    user: str
    duration_s: int = 0  # 0 = until they leave
    unmute: bool = False


@dataclass(frozen=True, slots=True)
class Crown:
    user: str = ""  # "" claims an unclaimed crown


@dataclass(frozen=True, slots=True)
class RoomSettingsCommand:
    """`/room` alone shows the settings; with key=value pairs it changes them (unset stays)."""

    visible: bool | None = None
    password: str | None = None
    user_limit: int | None = None
    chat_enabled: bool | None = None
    owner_only_play: bool | None = None

    @property
    def is_query(self) -> bool:
        return all(
            v is None
            for v in (self.visible, self.password, self.user_limit, self.chat_enabled, self.owner_only_play)
        )


@dataclass(frozen=True, slots=True)
class SetLatency:
    preset: str


@dataclass(frozen=True, slots=True)
class Admin:
    """`/admin login TOKEN`, `/admin logout`, or a server admin command ("help", "close_room", ...)."""

    action: str
    args: tuple[str, ...] = ()


Command = (
    Help | Nick | SetColor | SetStatus | SetInstrument | Kick | Ban | Unban | ListBans | Mute | Crown
    | RoomSettingsCommand | SetLatency | Admin
)  # fmt: skip

HELP: Final[dict[str, str]] = {
    "help": "/help [command] - list commands, or explain one",
    "nick": "/nick NAME - change your name",
    "color": "/color #RRGGBB - change your colour",
    "status": "/status online|away|busy - change your status",
    "instrument": "/instrument NUMBER|NAME - play with another General MIDI instrument",
    "kick": "/kick USER - (owner) send a player back to the lobby",
    "ban": "/ban USER [DURATION] - (owner) kick and keep them out, e.g. 10m, 2h (default 1h)",
    "bans": "/bans - (owner) list this room's bans and kicks with the time left",
    "unban": "/unban NAME - (owner) lift a ban (or a kick's cool-down) by the name /bans shows",
    "mute": "/mute USER [DURATION|off] - (owner) stop a player's chat; 'off' lifts it",
    "crown": "/crown [USER] - (owner) give the crown; with no user, claim an unclaimed crown",
    "room": "/room [private=on|off password=TEXT limit=N chat=on|off ownerplay=on|off] - room settings",
    "latency": "/latency low|balanced|safe - how long to buffer others' notes",
    "admin": "/admin login TOKEN, /admin logout, /admin help, /admin COMMAND [ARGS] - server admin commands",
}


def describe_bans(bans: Sequence[tuple[str, int, bool]]) -> str:
    """One line for /bans from (name, seconds left, is a kick) entries."""
    if not bans:
        return "No bans in this room."
    parts = []
    for name, remaining_s, kick in bans:
        left = f"{remaining_s} s" if remaining_s < 120 else f"{-(-remaining_s // 60)} min"
        parts.append(f"{name} ({'kicked, ' if kick else ''}{left} left)")
    return "Bans: " + "; ".join(parts) + ". /unban NAME lifts one."


def parse_duration(text: str) -> int | None:
    """ "90" (seconds), "10m", "2h" -> seconds within 1..86,400, or None."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        return None
    value = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return value if 1 <= value <= MAX_BAN_S else None


def _flag(text: str) -> bool | None:
    lowered = text.lower()
    return True if lowered in _ON else False if lowered in _OFF else None


def _parse_room(args: list[str]) -> RoomSettingsCommand | CommandError:
    values: dict[str, object] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.lower()
        if not sep:
            return CommandError(f"Write room settings as key=value, e.g. /room chat=off (got {arg!r}).")
        if key in ("private", "visible", "chat", "ownerplay"):
            flag = _flag(value)
            if flag is None:
                return CommandError(f"{key} takes on or off.")
            target = {"private": "visible", "visible": "visible", "chat": "chat_enabled"}.get(
                key, "owner_only_play"
            )
            values[target] = (not flag) if key == "private" else flag
        elif key == "password":
            if len(value) > 64:
                return CommandError("A room password is at most 64 characters.")
            values["password"] = value
        elif key == "limit":
            if not value.isdigit() or not 1 <= int(value) <= 100:
                return CommandError("limit takes a number from 1 to 100.")
            values["user_limit"] = int(value)
        else:
            return CommandError(
                f"Unknown room setting {key!r}; try private, password, limit, chat, ownerplay."
            )
    return RoomSettingsCommand(**values)  # type: ignore[arg-type]


def chat_refusal(text: str, max_chars: int, max_bytes: int) -> str | None:
    """Why the server would refuse `text` as a chat line (one sentence), or None.

    The limits are the server's (Welcome.limits: characters and UTF-8 bytes; 0 = not announced).
    """
    text = text.strip()
    if max_chars and len(text) > max_chars:
        return f"That message has {len(text)} characters; the server takes at most {max_chars}. Shorten it."
    size = len(text.encode())
    if max_bytes and size > max_bytes:
        return (
            f"That message takes {size} bytes; the server takes at most {max_bytes}"
            " (emoji and other symbols count 4 each). Shorten it."
        )
    return None


def parse_command(line: str) -> Command | CommandError | None:
    """Parse one chat input line. `None` means it is plain chat (send it)."""
    text = line.strip()
    if not text.startswith("/") or text.startswith("//"):
        return None
    name, _, rest = text[1:].partition(" ")
    name = name.lower()
    rest = rest.strip()
    args = rest.split()
    if name == "help":
        return Help(args[0].lstrip("/").lower() if args else "")
    if name == "nick":
        if not rest or len(rest) > 32:
            return CommandError("Usage: /nick NAME (1-32 characters).")
        return Nick(rest)
    if name in ("color", "colour"):
        match = _COLOR.match(rest)
        if not match:
            return CommandError("Usage: /color #RRGGBB, e.g. /color #ff8800.")
        return SetColor("#" + match.group(1).lower())
    if name == "status":
        if rest.lower() not in STATUSES:
            return CommandError("Usage: /status online|away|busy.")
        return SetStatus(rest.lower())
    if name == "instrument":
        if not rest:
            return CommandError("Usage: /instrument NUMBER|NAME, e.g. /instrument 0 or /instrument violin.")
        return SetInstrument(rest)
    if name in ("kick", "unban"):
        if not rest:
            return CommandError(f"Usage: /{name} USER.")
        return Kick(rest) if name == "kick" else Unban(rest)
    if name in ("ban", "mute", "unmute"):
        return _parse_ban_mute(name, args)
    if name == "crown":
        return Crown(rest)
    if name == "bans":
        return ListBans()
    if name == "room":
        return _parse_room(args)
    if name == "admin":
        return _parse_admin(args)
    if name == "latency":
        if rest.lower() not in LATENCY_PRESETS:
            return CommandError("Usage: /latency low|balanced|safe.")
        return SetLatency(rest.lower())
    return CommandError(f"Unknown command /{name}; type /help for the list (// sends a literal /).")


def _parse_ban_mute(name: str, args: list[str]) -> Command | CommandError:
    if not args:
        return CommandError(f"Usage: /{name} USER" + ("" if name == "unmute" else " [DURATION]") + ".")
    user, duration_s, unmute = args[0], 0, name == "unmute"
    if len(args) > 2:
        # Names may contain spaces: a trailing duration still parses.
        tail = parse_duration(args[-1]) if name != "unmute" else None
        if tail is not None or (name == "mute" and args[-1].lower() == "off"):
            user = " ".join(args[:-1])
            args = [user, args[-1]]
        else:
            user, args = " ".join(args), [" ".join(args)]
    if len(args) == 2:
        if name == "mute" and args[1].lower() == "off":
            unmute = True
        else:
            parsed = parse_duration(args[1])
            if parsed is None:
                return CommandError("A duration is a number of seconds or e.g. 10m, 2h (at most 24h).")
            duration_s = parsed
    if name == "ban":
        return Ban(user, duration_s)
    return Mute(user, duration_s, unmute)


def _parse_admin(args: list[str]) -> Admin | CommandError:
    action = args[0].lower() if args else "help"
    if action == "login" and len(args) != 2:
        return CommandError("Usage: /admin login TOKEN (the token the server was started with).")
    return Admin(action, tuple(args[1:]))
