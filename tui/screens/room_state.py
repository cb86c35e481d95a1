"""What the room screen knows about the room: members, owner, typing, settings (plain state, no widgets).

Fed with the engine's events (pianorhythm.tui.net.model); produces `PlayerView`s for the players list and
system lines for the chat. Kept apart from the screen so it can be read and tested on its own.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pianorhythm.client import model as m
from pianorhythm.tui.messages import PlayerView

LEAVE_WORDS = {
    "left": "left",
    "disconnected": "disconnected",
    "kicked": "was kicked",
    "banned": "was banned",
    "slow": "was dropped (too slow)",
    "replaced": "reconnected",
}


def _wall_clock_us() -> int:
    return time.time_ns() // 1000


def settings_changes(old: m.RoomSettingsInfo | None, new: m.RoomSettingsInfo) -> list[str]:
    """What differs from `old` to `new`, in words: ["locked", "limit 8", "private"]."""
    if old is None:
        return []
    changes = []
    if old.locked != new.locked:
        changes.append("locked" if new.locked else "no password")
    if old.user_limit != new.user_limit:
        changes.append(f"limit {new.user_limit}")
    if old.visible != new.visible:
        changes.append("listed" if new.visible else "private")
    if old.chat_enabled != new.chat_enabled:
        changes.append(f"chat {'on' if new.chat_enabled else 'off'}")
    if old.owner_only_play != new.owner_only_play:
        changes.append("only the owner plays" if new.owner_only_play else "everyone plays")
    return changes


@dataclass
class RoomState:
    name: str = ""
    me_id: int = 0
    owner_id: int = 0
    settings: m.RoomSettingsInfo | None = None
    users: dict[int, m.UserInfo] = field(default_factory=dict)  # in joining order
    typing: set[int] = field(default_factory=set)
    stats: dict[int, m.PlayerStats] = field(default_factory=dict)
    my_rtt_ms: float | None = None
    now_us: Callable[[], int] = field(default=_wall_clock_us, repr=False)  # server time
    tz: dt.tzinfo | None = None  # for the times we show (local time when None)
    away_owner: str = ""  # the name of the owner who left with the crown

    @classmethod
    def from_room(
        cls,
        room: m.RoomInfo,
        me_id: int,
        now_us: Callable[[], int] = _wall_clock_us,
        tz: dt.tzinfo | None = None,
    ) -> RoomState:
        users = sorted(room.users, key=lambda u: u.joined_room_us)
        return cls(
            room.name, me_id, room.owner_id, room.settings, {u.id: u for u in users}, now_us=now_us, tz=tz
        )

    def state_line(self) -> str:
        """Name and state for the header, e.g. "jam · 🔒 locked · 3/8 · private · only the owner plays"."""
        parts = [self.name]
        s = self.settings
        if s is not None:
            if s.locked:
                parts.append("🔒 locked")
            parts.append(f"{len(self.users)}/{s.user_limit}")
            if not s.visible:
                parts.append("private")
            if not s.chat_enabled:
                parts.append("chat off")
            if s.owner_only_play:
                parts.append("only the owner plays")
        return " · ".join(parts)

    def take_room(self, room: m.RoomInfo) -> None:
        """Members, owner and settings from a whole room state (a resume after a drop)."""
        fresh = RoomState.from_room(room, self.me_id)
        self.owner_id, self.settings, self.users = fresh.owner_id, fresh.settings, fresh.users
        self.typing &= fresh.users.keys()
        self.stats = {uid: s for uid, s in self.stats.items() if uid in fresh.users}

    @property
    def am_owner(self) -> bool:
        return self.owner_id != 0 and self.owner_id == self.me_id

    def name_of(self, user_id: int) -> str:
        user = self.users.get(user_id)
        return user.name if user else f"#{user_id}"

    def color_of(self, user_id: int) -> str:
        user = self.users.get(user_id)
        return user.color if user else "#888888"

    def colors(self) -> dict[int, str]:
        return {uid: u.color for uid, u in self.users.items()}

    def players(self) -> list[PlayerView]:
        views = []
        for uid, user in self.users.items():
            stats = self.stats.get(uid)
            views.append(
                PlayerView(
                    id=uid,
                    name=user.name,
                    color=user.color,
                    status=user.status,
                    instrument=user.instrument,
                    muted=user.muted,
                    owner=uid == self.owner_id,
                    typing=uid in self.typing,
                    is_self=uid == self.me_id,
                    rtt_ms=self.my_rtt_ms if uid == self.me_id else (stats.transit_ms if stats else None),
                    delay_ms=stats.delay_ms if stats else None,
                    spread_ms=stats.path_spread_ms if stats else None,
                    late=stats.late_count if stats else 0,
                )
            )
        return views

    def find_user(self, query: str) -> int | str:
        """A member's id from a name, a unique name prefix, or "#id"; else one sentence saying why not."""
        text = query.strip()
        if text.startswith("#") and text[1:].isdigit():
            return int(text[1:])
        lowered = text.casefold()
        exact = [uid for uid, u in self.users.items() if u.name.casefold() == lowered]
        if len(exact) == 1:
            return exact[0]
        prefix = [uid for uid, u in self.users.items() if u.name.casefold().startswith(lowered)]
        if len(exact) > 1 or len(prefix) > 1:
            return f"More than one player matches {text!r}; use #id (e.g. #{(exact or prefix)[0]})."
        if prefix:
            return prefix[0]
        return f"No player called {text!r} is in this room."

    # ---- events -> system lines (None: nothing to say) ---------------------------------------------------

    def apply(self, event: m.EngineEvent, say: Callable[[str], None]) -> bool:
        """Update from one engine event; `say` system lines. True when the players list changed."""
        match event:
            case m.UserJoined(user=user):
                self.users[user.id] = user
                say(f"{user.name} joined")
            case m.UserLeft(user_id=uid, name=name, reason=reason):
                gone = self.users.pop(uid) if uid in self.users else None
                self.typing.discard(uid)
                if uid == self.owner_id:
                    self.away_owner = gone.name if gone else name
                if reason != "replaced":
                    say(f"{gone.name if gone else name} {LEAVE_WORDS.get(reason, 'left')}")
            case m.UserUpdated(user=user):
                old = self.users.get(user.id)
                if old is not None and old.name != user.name:
                    say(f"{old.name} is now known as {user.name}")
                if old is not None and old.muted != user.muted:
                    say(f"{user.name} was {'muted' if user.muted else 'unmuted'}")
                self.users[user.id] = (
                    user if old is None else replace(user, joined_room_us=old.joined_room_us)
                )
            case m.RoomChanged(settings=settings, owner_id=owner_id, crown_claimable_at_us=at, ref=ref):
                before, self.settings = self.settings, settings
                self._say_settings(before, owner_id, ref, say)
                if owner_id != self.owner_id:
                    self.owner_id = owner_id
                    say(
                        f"♛ {self.name_of(owner_id)} now holds the crown"
                        if owner_id
                        else self._crown_free(at)
                    )
            case m.TypingChanged(user_id=uid, typing=typing):
                if typing and uid != self.me_id:
                    self.typing.add(uid)
                else:
                    self.typing.discard(uid)
            case m.ChatReceived(line=line):
                self.typing.discard(line.user_id)
            case _:
                return False
        return True

    def _say_settings(
        self, old: m.RoomSettingsInfo | None, owner_id: int, ref: int, say: Callable[[str], None]
    ) -> None:
        changes = ", ".join(settings_changes(old, self.settings) if self.settings else [])
        if ref:  # the answer to our own /room
            done = f"Room settings saved ({changes})" if changes else "Room settings saved"
            say(f"{done}; the room is now: {self.state_line()}")
        elif changes:
            who = "You" if owner_id == self.me_id else self.name_of(owner_id) if owner_id else "The owner"
            say(f"{who} changed the room settings: {changes}")

    def _crown_free(self, claimable_at_us: int) -> str:
        """What happens to a crown its owner left with: who gets it, and when."""
        owner = self.away_owner or "The owner"
        self.away_owner = ""
        heir = next(iter(self.users), 0)
        if not claimable_at_us or not heir:
            return f"{owner} left; the crown is free: /crown claims it"
        wait_s = max(0, -(-(claimable_at_us - self.now_us()) // 1_000_000))
        stamp = dt.datetime.fromtimestamp(claimable_at_us / 1_000_000, tz=self.tz or dt.UTC)
        clock = (stamp if self.tz else stamp.astimezone()).strftime("%H:%M:%S")
        heir_name = "you" if heir == self.me_id else self.name_of(heir)
        return (
            f"♛ {owner} left with the crown; it is theirs again if they return within {wait_s} s"
            f" (by {clock}), else it passes to {heir_name}, here longest"
        )
