"""The client engine: session + scheduler + synth + recorder, with no UI. The TUI and headless mode use it.

    engine = Engine(EngineConfig(url, name, room="jam"), synth=open_synth(...))
    await engine.start()
    async for event in engine.events():      # or engine.subscribe(callback)
        ...                                  # ConnectionChanged, RoomEntered, ChatReceived, NotesPlayed ...
    engine.play_local(music_event)           # from the MIDI adapter, the computer keyboard or a file
    engine.send_chat("hello")
    engine.replace_synth(open_synth(...))    # another driver/SoundFont, applied at once
    await engine.close()

Local events go to the server at once (the session stamps them with their capture time in server time) and
to our own synth channel at once. Remote events go through the player's PlayoutState (pianorhythm.playout)
to the dispatch thread, which plays them on the player's own synth channel at their due time and feeds the
recorder. When a player leaves, when we change rooms and when our connection drops, every note and pedal
they hold is released. Event types are in tui.net.model.

Every synth call goes through one lock, so `replace_synth()` can swap the synth while the dispatch thread
plays. A synth call that raises never stops the music: the engine switches to a NullSynth, closes the
broken one and emits SynthFailed (then SynthChanged); notes keep flowing to the screen and the recorder.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from pianorhythm.channels import ChannelAllocator
from pianorhythm.commands import describe_bans
from pianorhythm.events import SUSTAIN_PEDAL, EventKind, MusicEvent
from pianorhythm.notes import HeldNotes, unpack_relayed
from pianorhythm.playout import DEFAULT_PRESET, LatencyPreset, PlayoutState
from pianorhythm.wire import pianorhythm_pb2 as pb
from tui.audio.synth import NullSynth, Synth
from tui.net import model as m
from tui.net.backoff import Backoff
from tui.net.dispatcher import Dispatcher
from tui.net.requests import Requests
from tui.net.session import CATCHUP_REF, ClientSession, ConnectionState, SessionConfig
from tui.net.tokens import TokenStore

log = logging.getLogger(__name__)

LOCAL: Final = "local"  # the player key of our own notes (the dispatcher and channel allocator)
_LEAVE_REASONS: Final = {0: "left", 1: "disconnected", 2: "kicked", 3: "banned", 4: "slow", 5: "replaced"}
_REMOVAL_REASONS: Final = {0: "kicked", 1: "banned", 2: "room_closed"}


class Recorder(Protocol):
    """What the engine feeds (tui.midi.recorder.MidiRecorder): a track per player, events at synth time."""

    def add_player(self, player: Hashable, name: str, program: int | None = None) -> None: ...
    def record(self, player: Hashable, event: MusicEvent) -> None: ...
    def set_program(self, player: Hashable, program: int, time_ns: int) -> None: ...


@dataclass(slots=True)
class EngineConfig:
    url: str
    name: str
    color: str = ""
    room: str | None = None
    password: str = ""
    preset: LatencyPreset = DEFAULT_PRESET
    token_dir: str | None = None  # None: the platform config dir
    save_token: bool = True
    # The name is only a stand-in (the OS user, a random bot name): a resumed identity keeps the name the
    # server knows. Otherwise the name was chosen (--name, the config), and a resumed identity takes it.
    name_is_fallback: bool = False
    ping_interval_s: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)
    insecure: bool = False  # wss://: accept a certificate that cannot be verified (--insecure)
    # Move everything alive at start() out of the cyclic GC's reach (gc.freeze): a full collection
    # otherwise scans every module, class and widget, holding the GIL 15-30 ms, and the dispatch thread
    # cannot play a note meanwhile. Process-wide, like the switch interval the dispatcher lowers.
    freeze_gc: bool = True
    # Remote notes played by the dispatch thread reach subscribers (NotesPlayed) in batches, at most one per
    # this interval while notes flow (the first after a pause at once): waking the event loop for every
    # event cost more main-thread CPU than everything else the engine does per note. The TUI draws the
    # keyboard at 20 frames/s, so 25 ms batches change nothing on screen.
    played_flush_s: float = 0.025


@dataclass(slots=True)
class _Player:
    user_id: int
    name: str
    instrument: int
    playout: PlayoutState
    held: HeldNotes = field(default_factory=HeldNotes)
    channel: int | None = None


class Engine(Requests):
    def __init__(
        self,
        config: EngineConfig,
        synth: Synth | None = None,
        recorder: Recorder | None = None,
        now_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.config = config
        self.synth: Synth = synth if synth is not None else NullSynth()
        self.recorder = recorder
        self.preset = config.preset
        self._now_ns = now_ns
        tokens = TokenStore(config.token_dir) if config.save_token else None
        self.session = ClientSession(
            SessionConfig(
                url=config.url,
                name=config.name,
                color=config.color,
                room=config.room,
                password=config.password,
                tokens=tokens,
                ping_interval_s=config.ping_interval_s,
                backoff=config.backoff,
                insecure=config.insecure,
            ),
            on_message=self._on_message,
            on_state=self._on_state,
            now_ns=now_ns,
        )
        self.dispatcher = Dispatcher(self._play_scheduled, now_ns=now_ns)
        self.channels = ChannelAllocator(self.synth.channels)
        self.me: m.UserInfo | None = None
        self.room: m.RoomInfo | None = None
        self.rooms: dict[str, m.RoomSummaryInfo] = {}
        self._players: dict[int, _Player] = {}
        self._lock = threading.Lock()  # players' held notes and the recorder, shared with the dispatch thread
        self._synth_lock = threading.RLock()  # every call into self.synth (the dispatch thread plays too)
        self._subscribers: list[Callable[[m.EngineEvent], None]] = []
        self._played: deque[tuple[int, MusicEvent]] = deque()
        self._played_pending = False  # a flush is armed: a timer, or a wake from the dispatch thread
        self._played_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.local_events = 0
        self._local_held = HeldNotes()
        self._instrument = 0
        self._resuming_room: str | None = None
        self._wanted_name = "" if config.name_is_fallback else config.name  # follows our renames

    # ---- lifecycle and events --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.config.freeze_gc:
            gc.collect()
            gc.freeze()
        channel, _ = self.channels.acquire(LOCAL)
        self._synth_program(channel, self._instrument)
        self.dispatcher.start()
        await self.session.start()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        return await self.session.wait_connected(timeout)

    async def close(self) -> None:
        await self.session.close()
        self._release_everyone()
        self._release_local()
        self.dispatcher.stop()

    def subscribe(self, callback: Callable[[m.EngineEvent], None]) -> Callable[[], None]:
        """Call `callback` (on the event loop) for every engine event; returns the unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    async def events(self) -> AsyncIterator[m.EngineEvent]:
        """Every engine event from now on, in order."""
        queue: asyncio.Queue[m.EngineEvent] = asyncio.Queue()
        unsubscribe = self.subscribe(queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    def _emit(self, event: m.EngineEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                log.exception("an engine subscriber failed on %s", type(event).__name__)

    # ---- properties --------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.session.state

    @property
    def next_retry_in_s(self) -> float | None:
        """While waiting to reconnect: seconds until the next attempt (for a countdown); None otherwise."""
        return self.session.next_attempt_in_s

    @property
    def rtt_ms(self) -> float | None:
        """The round trip to the server; None while not connected (the last figure would be stale)."""
        if not self.session.connected:
            return None
        estimate = self.session.clock.estimate
        return estimate.rtt_us / 1000 if estimate else None

    @property
    def clock_jitter_ms(self) -> float | None:
        estimate = self.session.clock.estimate
        return estimate.jitter_us / 1000 if estimate else None

    def player_stats(self, user_id: int) -> m.PlayerStats | None:
        player = self._players.get(user_id)
        if player is None:
            return None
        p = player.playout
        transit = p.transit_p50_us if self.session.connected else None  # stale while the link is down
        return m.PlayerStats(
            user_id=user_id,
            delay_ms=p.delay_us / 1000,
            target_ms=p.target_us / 1000,
            transit_ms=None if transit is None else transit / 1000,
            late_count=p.late_count,
            events=p.event_count,
        )

    def all_player_stats(self) -> list[m.PlayerStats]:
        return [s for uid in list(self._players) if (s := self.player_stats(uid)) is not None]

    def set_latency_preset(self, preset: LatencyPreset | str) -> None:
        self.preset = LatencyPreset(preset)
        for player in self._players.values():
            player.playout.set_preset(self.preset)

    # ---- local play -------------------------------------------------------------------------------------

    def play_local(self, event: MusicEvent) -> None:
        """A local key/pedal event (stamped with its capture time): send it, sound it, record it."""
        self.session.queue_event(event)
        channel = self.channels.channel_of(LOCAL)
        if channel is not None:
            self._sound(channel, event)
        self.local_events += 1
        with self._lock:
            self._local_held.apply(event)
            self._record(LOCAL, event)
        self._note_played(self.session.user_id, event)

    def set_instrument(self, program: int) -> bool:
        self._instrument = max(0, min(127, program))
        channel = self.channels.channel_of(LOCAL)
        if channel is not None:
            self._synth_program(channel, self._instrument)
        if self.recorder is not None:
            self.recorder.set_program(LOCAL, self._instrument, self._now_ns())
        return self._send(update_instrument=pb.UpdateInstrument(program=self._instrument))

    # ---- incoming -----------------------------------------------------------------------------------------

    def _on_state(self, state: ConnectionState, detail: str) -> None:
        if state is not ConnectionState.CONNECTED:
            self._release_everyone()  # our own disconnect: nothing may hang
            if self.room is not None and self._resuming_room is None:
                self._resuming_room = self.room.name
        self._emit(m.ConnectionChanged(state, detail, self.session.retry_in_s, self.session.refused))

    def _on_message(self, message: pb.ServerMessage, received_ns: int) -> None:
        if self._played_timer is not None:  # a flush is armed: deliver what played since, on this wake
            self._drain_played()
            self._arm_played()
        kind = message.WhichOneof("event")
        if kind == "notes":
            self._on_notes(message, received_ns)
            return
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(message, received_ns)

    def _on_notes(self, message: pb.ServerMessage, received_ns: int) -> None:
        notes = message.notes
        player = self._players.get(notes.user_id)
        if player is None or notes.user_id == self.session.user_id:
            return
        offset_us = self.session.offset_us
        arrival_us = received_ns // 1000
        scheduled: list[MusicEvent] = []
        late = 0
        for remote in unpack_relayed(notes):
            slot = player.playout.schedule(round(remote.capture_server_us - offset_us), arrival_us)
            late += slot.late
            event = remote.at(slot.due_us * 1000)
            self.dispatcher.schedule(event.time_ns, notes.user_id, event)
            scheduled.append(event)
        if scheduled:
            self._emit(m.NotesScheduled(notes.user_id, tuple(scheduled), late))

    def _play_scheduled(self, due_ns: int, player_key: Hashable, event: MusicEvent) -> None:
        """On the dispatch thread, at the due time."""
        assert isinstance(player_key, int)
        player = self._players.get(player_key)
        if player is None or player.channel is None:
            return
        self._sound(player.channel, event)
        with self._lock:
            player.held.apply(event)
            self._record(player_key, event)
        loop = self._loop
        if loop is not None:
            self._played.append((player_key, event))
            if not self._played_pending:  # no flush armed on the loop: wake it (once per pause)
                self._played_pending = True
                loop.call_soon_threadsafe(self._flush_played)

    def _note_played(self, user_id: int, event: MusicEvent) -> None:
        self._emit(m.NotesPlayed(user_id, (event,), local=True))

    def _flush_played(self) -> None:
        """On the loop (the dispatch thread's wake, or the timer): hand played events to subscribers.

        While notes keep coming the flush stays armed as a timer, so the dispatch thread does not wake the
        loop for each event; each incoming message also flushes and pushes the timer back, so in a busy
        room the timer hardly ever fires and played notes ride along with the arrivals' wake-ups.
        """
        self._played_timer = None
        if self._drain_played():
            self._arm_played()
            return
        self._played_pending = False  # disarmed: the dispatch thread wakes us for the next event
        if self._played and not self._played_pending:  # it appended just before seeing the flag
            self._played_pending = True
            self._arm_played(0.0)

    def _arm_played(self, delay_s: float | None = None) -> None:
        loop = self._loop
        assert loop is not None
        if self._played_timer is not None:
            self._played_timer.cancel()
        wait = self.config.played_flush_s if delay_s is None else delay_s
        self._played_timer = loop.call_later(wait, self._flush_played)

    def _drain_played(self) -> bool:
        played = self._played
        if not played:
            return False
        by_player: dict[int, list[MusicEvent]] = {}
        while played:
            uid, event = played.popleft()
            by_player.setdefault(uid, []).append(event)
        for uid, events in by_player.items():
            self._emit(m.NotesPlayed(uid, tuple(events), local=False))
        return True

    def _on_welcome(self, message: pb.ServerMessage, received_ns: int) -> None:
        welcome = message.welcome
        self.me = m.UserInfo.from_pb(welcome.user)
        if self.recorder is not None:
            self.recorder.add_player(LOCAL, self.me.name, self._instrument)
        self._emit(
            m.Welcomed(self.me, welcome.resumed, welcome.server_version, welcome.limits.max_chat_chars)
        )
        if welcome.resumed and self._wanted_name and self._wanted_name != self.me.name:
            log.info("resumed as %s; renaming to %s as asked", self.me.name, self._wanted_name)
            self.set_profile(name=self._wanted_name)
        if self._instrument:
            self._send(update_instrument=pb.UpdateInstrument(program=self._instrument))

    def _on_room_state(self, message: pb.ServerMessage, received_ns: int) -> None:
        state = message.room_state
        resumed = state.name == self._resuming_room
        if resumed or not state.is_lobby:
            self._resuming_room = None
        self._release_everyone()
        for uid in list(self._players):
            self._remove_player(uid)
        self.room = m.RoomInfo.from_pb(state)
        for user in state.users:
            self._add_player(user)
        self._emit(m.RoomEntered(self.room, resumed))

    def _add_player(self, user: pb.User) -> None:
        if user.id == self.session.user_id:
            if self.me is not None:
                self.me = m.UserInfo.from_pb(user)
            return
        player = self._players.get(user.id)
        if player is None:
            player = _Player(user.id, user.name, user.instrument, PlayoutState(self.preset))
            player.channel, _ = self.channels.acquire(user.id)
            self._synth_program(player.channel, user.instrument)
            self._players[user.id] = player
            if self.recorder is not None:
                self.recorder.add_player(user.id, user.name, user.instrument)
        else:
            player.name = user.name
            if player.instrument != user.instrument:
                if player.channel is not None:
                    self._synth_program(player.channel, user.instrument)
                if self.recorder is not None:
                    self.recorder.set_program(user.id, user.instrument, self._now_ns())
            player.instrument = user.instrument

    def _remove_player(self, user_id: int) -> _Player | None:
        player = self._players.pop(user_id, None)
        if player is not None:
            self._release(player)
            self.channels.release(user_id)
        return player

    def _release(self, player: _Player) -> None:
        self.dispatcher.cancel(player.user_id)
        if player.channel is not None:
            self._synth_release(player.channel)
        with self._lock:
            for event in player.held.release(self._now_ns()):
                self._record(player.user_id, event)

    def _release_everyone(self) -> None:
        for player in self._players.values():
            self._release(player)

    def _release_local(self) -> None:
        channel = self.channels.channel_of(LOCAL)
        if channel is not None:
            self._synth_release(channel)
        with self._lock:
            for event in self._local_held.release(self._now_ns()):
                self._record(LOCAL, event)

    def _on_user_joined(self, message: pb.ServerMessage, received_ns: int) -> None:
        self._add_player(message.user_joined.user)
        self._emit(m.UserJoined(m.UserInfo.from_pb(message.user_joined.user)))

    def _on_user_left(self, message: pb.ServerMessage, received_ns: int) -> None:
        left = message.user_left
        player = self._remove_player(left.user_id)
        name = player.name if player else str(left.user_id)
        self._emit(m.UserLeft(left.user_id, name, _LEAVE_REASONS.get(left.reason, "left")))

    def _on_user_updated(self, message: pb.ServerMessage, received_ns: int) -> None:
        if message.user_updated.user.id == self.session.user_id:  # a /nick: the next resume keeps it
            self._wanted_name = message.user_updated.user.name
        self._add_player(message.user_updated.user)
        self._emit(m.UserUpdated(m.UserInfo.from_pb(message.user_updated.user)))

    def _on_chat_message(self, message: pb.ServerMessage, received_ns: int) -> None:
        self._emit(m.ChatReceived(m.ChatLine.from_pb(message.chat_message)))

    def _on_chat_history_page(self, message: pb.ServerMessage, received_ns: int) -> None:
        page = message.chat_history_page
        lines = tuple(m.ChatLine.from_pb(c) for c in page.messages)
        self._emit(m.ChatHistory(lines, page.has_more, catch_up=message.ref == CATCHUP_REF))

    def _on_typing(self, message: pb.ServerMessage, received_ns: int) -> None:
        self._emit(m.TypingChanged(message.typing.user_id, message.typing.typing))

    def _on_room_updated(self, message: pb.ServerMessage, received_ns: int) -> None:
        u = message.room_updated
        settings = m.RoomSettingsInfo.from_pb(u.settings)
        self._emit(m.RoomChanged(settings, u.owner_id, u.crown_claimable_at_us, message.ref))

    def _on_room_list(self, message: pb.ServerMessage, received_ns: int) -> None:
        self.rooms = {r.name: m.RoomSummaryInfo.from_pb(r) for r in message.room_list.rooms}
        self._emit(m.RoomListChanged(tuple(self.rooms.values())))

    def _on_room_list_delta(self, message: pb.ServerMessage, received_ns: int) -> None:
        delta = message.room_list_delta
        for r in delta.upserted:
            self.rooms[r.name] = m.RoomSummaryInfo.from_pb(r)
        for name in delta.removed:
            self.rooms.pop(name, None)
        self._emit(m.RoomListChanged(tuple(self.rooms.values()), tuple(delta.removed)))

    def _on_removed(self, message: pb.ServerMessage, received_ns: int) -> None:
        r = message.removed
        by = self._players.get(r.by_user_id)
        reason = _REMOVAL_REASONS.get(r.reason, "kicked")
        self._emit(m.Removed(reason, r.room, r.by_user_id, r.duration_s, by.name if by else ""))

    def _on_error(self, message: pb.ServerMessage, received_ns: int) -> None:
        e = message.error
        name = pb.ErrorCode.Name(e.code) if e.code in pb.ErrorCode.values() else str(e.code)
        self._emit(m.ServerError(e.code, name, e.message, message.ref))

    def _on_command_result(self, message: pb.ServerMessage, received_ns: int) -> None:
        self._emit(m.CommandOutput(message.command_result.ok, message.command_result.output))

    def _on_ban_list(self, message: pb.ServerMessage, received_ns: int) -> None:
        bans = [(b.name, b.remaining_s, b.kick) for b in message.ban_list.bans]
        self._emit(m.CommandOutput(True, describe_bans(bans)))

    # ---- the synth ---------------------------------------------------------------------------------------

    def replace_synth(self, synth: Synth, *, keep_levels: bool = True, close_old: bool = True) -> Synth:
        """Play into `synth` from now on (another audio driver or SoundFont); returns the old one.

        The new synth gets every channel's program (ours and each player's), the sustain pedal of whoever
        holds it down and, with `keep_levels`, the old one's volume, reverb and chorus. Every channel of the
        old synth is released (notes sounding on it stop) and, with `close_old`, it is closed. Call it on
        the event loop's thread; closing a FluidSynth stops its audio driver, which can take a few ms.
        """
        if synth.channels < self.synth.channels:
            log.warning("the new synth has %d channels; players past them will be silent", synth.channels)
        if keep_levels:
            synth.set_volume(self.synth.volume)
            synth.set_reverb(self.synth.reverb)
            synth.set_chorus(self.synth.chorus)
        with self._synth_lock:
            old, self.synth = self.synth, synth
            for channel, program, pedal in self._channel_states():
                self._guarded(synth, synth.set_program, channel, program)
                if pedal:
                    self._guarded(synth, synth.play, channel, _pedal_down())
            try:
                for channel in range(old.channels):
                    old.release_all(channel)
            except Exception:
                log.exception("releasing the old synth's channels failed")
        if close_old:
            _close_quietly(old)
        self._emit(_synth_changed(self.synth))  # the silent fallback if the new one failed at once
        return old

    def _channel_states(self) -> list[tuple[int, int, bool]]:
        """(channel, program, sustain pedal down) for us and every remote player with a channel."""
        states: list[tuple[int, int, bool]] = []
        local = self.channels.channel_of(LOCAL)
        if local is not None:
            states.append((local, self._instrument, self._local_held.pedal))
        for player in list(self._players.values()):
            if player.channel is not None:
                states.append((player.channel, player.instrument, player.held.pedal))
        return states

    def _sound(self, channel: int, event: MusicEvent) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.play, channel, event)

    def _synth_program(self, channel: int, program: int) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.set_program, channel, program)

    def _synth_release(self, channel: int) -> None:
        with self._synth_lock:
            self._guarded(self.synth, self.synth.release_all, channel)

    def _guarded(self, synth: Synth, call: Callable[..., None], *args: object) -> None:
        """Call into `synth` (holding _synth_lock); if it raises, fall back to silence, never propagate."""
        try:
            call(*args)
        except Exception as exc:
            if synth is not self.synth:
                return  # already replaced
            error = str(exc) or "the synth failed"  # the class name goes to the log, not to the player
            message = f"audio stopped ({error}); notes still show"
            log.error("the synth failed (%r); playing silently from now on", exc, exc_info=True)
            fallback = NullSynth(message, channels=synth.channels)
            fallback.volume, fallback.reverb, fallback.chorus = synth.volume, synth.reverb, synth.chorus
            self.synth = fallback
            self._on_loop(self._synth_failed, synth, error, message)

    def _synth_failed(self, broken: Synth, error: str, message: str) -> None:
        _close_quietly(broken)
        self._emit(m.SynthFailed(error, message))
        self._emit(_synth_changed(self.synth))

    def _on_loop(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback` on the event loop (from any thread); at once if the engine has no loop yet."""
        loop = self._loop
        if loop is None or loop.is_closed():
            callback(*args)
        else:
            loop.call_soon_threadsafe(callback, *args)

    # ---- recording ---------------------------------------------------------------------------------------

    def _record(self, player: Hashable, event: MusicEvent) -> None:
        if self.recorder is not None:
            self.recorder.record(player, event)


def _pedal_down() -> MusicEvent:
    return MusicEvent(EventKind.CONTROL, SUSTAIN_PEDAL, 127, time.perf_counter_ns())


def _synth_changed(synth: Synth) -> m.SynthChanged:
    return m.SynthChanged(
        synth.description, synth.silent, getattr(synth, "reason", "") if synth.silent else ""
    )


def _close_quietly(synth: Synth) -> None:
    try:
        synth.close()
    except Exception:
        log.exception("closing the synth failed")


async def play_file_events(
    engine: Engine, events: Iterable[MusicEvent], now_ns: Callable[[], int] = time.perf_counter_ns
) -> int:
    """Play timed events (time_ns relative to the start of the file) into the room as if from a keyboard.

    Each event is stamped with its intended time, so the rhythm that goes on the wire is the file's even if
    the event loop wakes a little late. Returns how many events were played. Cancelled (the user stops
    it), it releases every key and pedal it holds first, so nothing sticks for the listeners.
    """
    from tui.midi.fileplayer import play_events

    return await play_events(events, engine.play_local, start_ns=now_ns() + 50_000_000, clock=now_ns)
