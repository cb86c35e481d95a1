"""The client core: the whole client minus I/O. Messages, time and key presses in; effects out.

    core = ClientCore(SessionCore(SessionSettings(name="ann", room="jam")))
    core.link_up(now)                      -> [Send(Hello)]
    core.receive(frame, now) / core.handle(server_message, now)
                                           -> [Notify(RoomEntered ...), ScheduleNote(due_ns, ...), ...]
    core.tick(now)                         -> [Send(NoteBatch), Send(Ping)]   (call at core.next_tick_ns)
    core.local_input(music_event, now)     -> [PlayLocal(event), Notify(NotesPlayed)]; the batch goes at tick
    core.state_changed(state, detail, now) -> [ReleasePlayer(...), Notify(ConnectionChanged)]
    core.send_chat("hi"), core.join_room("jam"), ...   (pianorhythm.client.requests)

The connection-level state (Hello, resume token, rejoin, chat catch-up, clock sync) is SessionCore's
(pianorhythm.client.session); this adds the room: who is in it, each remote player's PlayoutState
(pianorhythm.playout) turning their notes' send stamps and arrival times into due times, the room list, and
the events the UI is told (pianorhythm.client.model). Whose notes must be released: a player who left, all
of them when a new room state comes or our connection drops. The shell (tui/engine.py) runs the effects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from pianorhythm.client import model as m
from pianorhythm.client.effects import (
    LOCAL,
    AddPlayer,
    Effect,
    Notify,
    PlayLocal,
    Received,
    ReleasePlayer,
    ScheduleNote,
    SetInstrument,
)
from pianorhythm.client.requests import Requests
from pianorhythm.client.session import CATCHUP_REF, SessionCore
from pianorhythm.commands import describe_bans
from pianorhythm.events import MusicEvent
from pianorhythm.notes import unpack_relayed
from pianorhythm.playout import DEFAULT_PRESET, LatencyPreset, PlayoutState
from pianorhythm.wire import pianorhythm_pb2 as pb

log = logging.getLogger(__name__)

LEAVE_REASONS: Final = {0: "left", 1: "disconnected", 2: "kicked", 3: "banned", 4: "slow", 5: "replaced"}
REMOVAL_REASONS: Final = {0: "kicked", 1: "banned", 2: "room_closed"}


@dataclass(slots=True)
class Player:
    info: m.UserInfo
    playout: PlayoutState


class ClientCore(Requests):
    """See the module docstring."""

    def __init__(
        self, link: SessionCore, preset: LatencyPreset = DEFAULT_PRESET, name_is_fallback: bool = False
    ) -> None:
        self.link = link
        self.preset = preset
        self.me: m.UserInfo | None = None
        self.room: m.RoomInfo | None = None
        self.rooms: dict[str, m.RoomSummaryInfo] = {}
        self.players: dict[int, Player] = {}
        self.connected = False
        self.instrument = 0
        self._resuming_room: str | None = None
        self._members_when_dropped: dict[int, m.UserInfo] = {}  # to say who came and went meanwhile
        # A stand-in name (the OS user, a random bot name) gives way to the name a resumed identity has;
        # a chosen one (--name, the config) is taken back after a resume. Follows our renames.
        self._wanted_name = "" if name_is_fallback else link.settings.name

    # ---- the link, time and local play ---------------------------------------------------------------

    def link_up(self, now_ns: int) -> list[Effect]:
        return self.link.link_up(now_ns)

    def link_down(self, now_ns: int) -> list[Effect]:
        return self.link.link_down(now_ns)

    def state_changed(
        self,
        state: m.ConnectionState,
        detail: str,
        now_ns: int,
        retry_in_s: float | None = None,
        refused: bool = False,
    ) -> list[Effect]:
        self.connected = state is m.ConnectionState.CONNECTED
        out: list[Effect] = []
        if not self.connected:
            out += self._release_everyone()  # our own disconnect: nothing may hang
            if self.room is not None and self._resuming_room is None:
                self._resuming_room = self.room.name
                self._members_when_dropped = {uid: p.info for uid, p in self.players.items()}
        out.append(Notify(m.ConnectionChanged(state, detail, retry_in_s, refused)))
        return out

    @property
    def next_tick_ns(self) -> int | None:
        return self.link.next_tick_ns

    def tick(self, now_ns: int) -> list[Effect]:
        return self.link.tick(now_ns)

    def local_input(self, event: MusicEvent, now_ns: int) -> list[Effect]:
        """A local key/pedal event (stamped with its capture time): sound it now, send it at the next tick."""
        self.link.queue_event(event)
        return [PlayLocal(event), Notify(m.NotesPlayed(self.link.user_id, (event,), local=True))]

    def set_instrument(self, program: int) -> list[Effect]:
        self.instrument = max(0, min(127, program))
        change = SetInstrument(LOCAL, self.instrument)
        return [change, *self.link.request(update_instrument=pb.UpdateInstrument(program=self.instrument))]

    def set_latency_preset(self, preset: LatencyPreset | str) -> None:
        self.preset = LatencyPreset(preset)
        for player in self.players.values():
            player.playout.set_preset(self.preset)

    def close(self) -> list[Effect]:
        return [*self._release_everyone(), ReleasePlayer(LOCAL)]

    # ---- figures -------------------------------------------------------------------------------------

    @property
    def rtt_ms(self) -> float | None:
        """The round trip to the server; None while not connected (the last figure would be stale)."""
        estimate = self.link.clock.estimate
        return estimate.rtt_us / 1000 if estimate and self.connected else None

    def player_stats(self, user_id: int) -> m.PlayerStats | None:
        player = self.players.get(user_id)
        if player is None:
            return None
        p = player.playout
        transit = p.transit_p50_us if self.connected else None  # stale while the link is down
        spread = self.path_spread_us(player)
        return m.PlayerStats(
            user_id=user_id,
            delay_ms=p.delay_us / 1000,
            target_ms=p.target_us / 1000,
            transit_ms=None if transit is None else transit / 1000,
            late_count=p.late_count,
            events=p.event_count,
            path_spread_ms=None if spread is None or not self.connected else spread / 1000,
        )

    def path_spread_us(self, player: Player) -> int | None:
        """How far the transit of their notes can reach above its lowest: their uplink's spread (the relay's
        figure) + our downlink's (our pongs); None before either is measured."""
        downlink = self.link.downlink
        if not player.info.uplink_spread_us and len(downlink) < 2:
            return None
        return player.info.uplink_spread_us + downlink.spread_us

    def path_floor_us(self, player: Player, now_ns: int) -> int | None:
        """How low the transit of their notes can go: their uplink's floor (the relay's figure, against
        their stamps) + our downlink's (our pongs, against our note offset); None before both are known."""
        down = self.link.downlink_floor_us(now_ns)
        up = player.info.uplink_floor_us
        return None if down is None or not up else up + down

    # ---- incoming ------------------------------------------------------------------------------------

    def receive(self, frame: bytes, now_ns: int) -> list[Effect]:
        return self._above(self.link.receive(frame, now_ns))

    def handle(self, message: pb.ServerMessage, now_ns: int) -> list[Effect]:
        return self._above(self.link.handle(message, now_ns))

    def _above(self, effects: list[Effect]) -> list[Effect]:
        out: list[Effect] = []
        for effect in effects:
            if isinstance(effect, Received):
                out += self._on_message(effect.message, effect.received_ns)
            else:
                out.append(effect)
        return out

    def _on_message(self, message: pb.ServerMessage, now_ns: int) -> list[Effect]:
        kind = message.WhichOneof("event")
        if kind == "notes":
            return self._on_notes(message.notes, now_ns)
        if kind == "welcome":
            return self._on_welcome(message.welcome)
        if kind == "room_state":
            return self._on_room_state(message.room_state)
        if kind == "user_joined":
            user = message.user_joined.user
            return [*self._add_player(user), Notify(m.UserJoined(m.UserInfo.from_pb(user)))]
        if kind == "user_left":
            left = message.user_left
            player = self.players.get(left.user_id)
            name = player.info.name if player else str(left.user_id)
            reason = LEAVE_REASONS.get(left.reason, "left")
            return [*self._remove_player(left.user_id), Notify(m.UserLeft(left.user_id, name, reason))]
        if kind == "user_updated":
            user = message.user_updated.user
            if user.id == self.link.user_id:  # a /nick: the next resume keeps it
                self._wanted_name = user.name
            return [*self._add_player(user), Notify(m.UserUpdated(m.UserInfo.from_pb(user)))]
        if kind == "chat_message":
            return [Notify(m.ChatReceived(m.ChatLine.from_pb(message.chat_message)))]
        if kind == "chat_history_page":
            page = message.chat_history_page
            lines = tuple(m.ChatLine.from_pb(c) for c in page.messages)
            return [Notify(m.ChatHistory(lines, page.has_more, catch_up=message.ref == CATCHUP_REF))]
        event = self._notice(message, kind)
        return [] if event is None else [Notify(event)]

    def _notice(self, message: pb.ServerMessage, kind: str | None) -> m.EngineEvent | None:
        """The messages that only tell the UI something."""
        if kind == "typing":
            return m.TypingChanged(message.typing.user_id, message.typing.typing)
        if kind == "room_updated":
            u = message.room_updated
            settings = m.RoomSettingsInfo.from_pb(u.settings)
            return m.RoomChanged(settings, u.owner_id, u.crown_claimable_at_us, message.ref)
        if kind == "room_list":
            self.rooms = {r.name: m.RoomSummaryInfo.from_pb(r) for r in message.room_list.rooms}
            return m.RoomListChanged(tuple(self.rooms.values()))
        if kind == "room_list_delta":
            delta = message.room_list_delta
            for r in delta.upserted:
                self.rooms[r.name] = m.RoomSummaryInfo.from_pb(r)
            for name in delta.removed:
                self.rooms.pop(name, None)
            return m.RoomListChanged(tuple(self.rooms.values()), tuple(delta.removed))
        if kind == "removed":
            out = message.removed
            by = self.players.get(out.by_user_id)
            reason = REMOVAL_REASONS.get(out.reason, "kicked")
            return m.Removed(reason, out.room, out.by_user_id, out.duration_s, by.info.name if by else "")
        if kind == "error":
            e = message.error
            name = pb.ErrorCode.Name(e.code) if e.code in pb.ErrorCode.values() else str(e.code)
            return m.ServerError(e.code, name, e.message, message.ref)
        if kind == "command_result":
            return m.CommandOutput(message.command_result.ok, message.command_result.output)
        if kind == "ban_list":
            bans = [(b.name, b.remaining_s, b.kick) for b in message.ban_list.bans]
            return m.CommandOutput(True, describe_bans(bans))
        return None

    def _on_notes(self, notes: pb.RelayedNotes, now_ns: int) -> list[Effect]:
        player = self.players.get(notes.user_id)
        if player is None or notes.user_id == self.link.user_id:
            return []
        offset_us = self.link.note_offset_us(now_ns)
        arrival_us = now_ns // 1000
        # Their uplink (the relay saw their pings) and our downlink: sized before their first note arrives.
        player.playout.path_spread_us = self.path_spread_us(player) or 0
        player.playout.path_floor_us = self.path_floor_us(player, now_ns)
        out: list[Effect] = []
        scheduled: list[MusicEvent] = []
        late = 0
        for remote in unpack_relayed(notes):
            slot = player.playout.schedule(round(remote.capture_server_us - offset_us), arrival_us)
            late += slot.late
            event = remote.at(slot.due_us * 1000)
            out.append(ScheduleNote(event.time_ns, notes.user_id, event))
            scheduled.append(event)
        if scheduled:
            out.append(Notify(m.NotesScheduled(notes.user_id, tuple(scheduled), late)))
        return out

    def _on_welcome(self, welcome: pb.Welcome) -> list[Effect]:
        self.me = m.UserInfo.from_pb(welcome.user)
        out: list[Effect] = [
            AddPlayer(LOCAL, self.me.name, self.instrument),
            Notify(
                m.Welcomed(self.me, welcome.resumed, welcome.server_version, welcome.limits.max_chat_chars)
            ),
        ]
        if welcome.resumed and self._wanted_name and self._wanted_name != self.me.name:
            log.info("resumed as %s; renaming to %s as asked", self.me.name, self._wanted_name)
            out += self.set_profile(name=self._wanted_name)
        if self.instrument:
            out += self.link.request(update_instrument=pb.UpdateInstrument(program=self.instrument))
        return out

    def _on_room_state(self, state: pb.RoomState) -> list[Effect]:
        resumed = state.name == self._resuming_room
        before = self._members_when_dropped
        if resumed or not state.is_lobby:
            self._resuming_room, self._members_when_dropped = None, {}
        out: list[Effect] = []
        for uid in list(self.players):
            out += self._remove_player(uid)
        self.room = m.RoomInfo.from_pb(state)
        for user in state.users:
            out += self._add_player(user)
        came: tuple[m.UserInfo, ...] = ()
        went: tuple[m.UserInfo, ...] = ()
        if resumed:
            came = tuple(u for u in self.room.users if u.id not in before and u.id != self.link.user_id)
            went = tuple(u for uid, u in before.items() if uid not in self.players)
        out.append(Notify(m.RoomEntered(self.room, resumed, came, went)))
        return out

    # ---- players -------------------------------------------------------------------------------------

    def _add_player(self, user: pb.User) -> list[Effect]:
        info = m.UserInfo.from_pb(user)
        if user.id == self.link.user_id:
            if self.me is not None:
                self.me = info
            return []
        player = self.players.get(user.id)
        if player is None:
            self.players[user.id] = Player(info, PlayoutState(self.preset))
            return [AddPlayer(user.id, user.name, user.instrument)]
        old, player.info = player.info, info
        return [SetInstrument(user.id, user.instrument)] if old.instrument != user.instrument else []

    def _remove_player(self, user_id: int) -> list[Effect]:
        if self.players.pop(user_id, None) is None:
            return []
        return [ReleasePlayer(user_id, forget=True)]

    def _release_everyone(self) -> list[Effect]:
        return [ReleasePlayer(uid) for uid in self.players]
