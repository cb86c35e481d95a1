"""The client engine: runs the client core's effects on the session, scheduler, synth and recorder.

    engine = Engine(EngineConfig(url, name, room="jam"), synth=open_synth(...))
    await engine.start()
    async for event in engine.events():      # or engine.subscribe(callback)
        ...                                  # ConnectionChanged, RoomEntered, ChatReceived, NotesPlayed ...
    engine.play_local(music_event)           # from the MIDI adapter, the computer keyboard or a file
    engine.send_chat("hello")
    engine.replace_synth(open_synth(...))    # another driver/SoundFont, applied at once
    await engine.close()

What happens is decided by the client core (pianorhythm.client.core.ClientCore, no I/O); the session
shell (pianorhythm.tui.net.session) moves its messages over the WebSocket, and this runs the rest of its
effects (pianorhythm.client.effects): a local event (PlayLocal) sounds at once on our own synth channel; a
remote one (ScheduleNote, its due time from the player's PlayoutState) goes to the scheduler
(pianorhythm.tui.audio.scheduler), which queues it at once in the synth for that time on the player's own
channel and, once it is due, on the event loop, records it and hands it to subscribers in batches
(NotesPlayed); ReleasePlayer drops a player's pending notes and releases what it holds (it left, we
changed rooms, our connection dropped); Notify goes to subscribers. Event types are in
pianorhythm.client.model.

The synth is held by pianorhythm.tui.synth_owner: one lock around every call, a live swap
(`replace_synth()`, which re-queues the remote notes still to come), and a silent fallback when a call
raises (SynthFailed, then SynthChanged).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pianorhythm.channels import ChannelAllocator
from pianorhythm.client import model as m
from pianorhythm.client.core import ClientCore
from pianorhythm.client.effects import (
    LOCAL,
    AddPlayer,
    Effect,
    Notify,
    PlayLocal,
    ReleasePlayer,
    ScheduleNote,
    SetInstrument,
)
from pianorhythm.client.model import ConnectionState
from pianorhythm.client.session import SessionCore
from pianorhythm.events import MusicEvent
from pianorhythm.interpreter import settle_gc
from pianorhythm.notes import HeldNotes
from pianorhythm.playout import DEFAULT_PRESET, LatencyPreset
from pianorhythm.tui.audio.scheduler import SynthScheduler
from pianorhythm.tui.audio.synth import NullSynth, Synth
from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.net.requests import Requests
from pianorhythm.tui.net.session import ClientSession, SessionConfig
from pianorhythm.tui.net.tokens import TokenStore
from pianorhythm.tui.synth_owner import SynthOwner

log = logging.getLogger(__name__)


class Recorder(Protocol):
    """What the engine feeds (pianorhythm.tui.midi.recorder.MidiRecorder): a track per player, events at
    synth time."""

    def add_player(self, player: Hashable, name: str, program: int | None = None) -> None: ...
    def record(self, player: Hashable, event: MusicEvent) -> None: ...
    def set_program(self, player: Hashable, program: int, time_ns: int) -> None: ...


class MidiOutSink(Protocol):
    """Where remote players' events also go (pianorhythm.tui.midi.output.MidiOut), on their channel."""

    def schedule(self, due_ns: int, channel: int, event: MusicEvent) -> None: ...
    def program(self, channel: int, program: int, due_ns: int | None = None) -> None: ...
    def release(self, channel: int) -> None: ...


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
    # Remote notes reach subscribers (NotesPlayed) in batches, at most one per this interval while notes
    # flow (the first after a pause at once): one per event cost more main-thread CPU than everything else
    # the engine does per note. The TUI draws the keyboard at 20 frames/s, so 25 ms batches change nothing.
    played_flush_s: float = 0.025


class Engine(Requests, SynthOwner):
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
        self.midi_out: MidiOutSink | None = None  # remote players' events to a MIDI port too (--midi-out)
        self._now_ns = now_ns
        session_config = SessionConfig(
            url=config.url,
            name=config.name,
            color=config.color,
            room=config.room,
            password=config.password,
            tokens=TokenStore(config.token_dir) if config.save_token else None,
            ping_interval_s=config.ping_interval_s,
            backoff=config.backoff,
            insecure=config.insecure,
        )
        link = SessionCore(session_config.settings())
        self.core = ClientCore(link, config.preset, config.name_is_fallback)
        self.session = ClientSession(session_config, core=self.core, on_effects=self._execute, now_ns=now_ns)
        self.scheduler = SynthScheduler(
            self._sound_at, self._played_scheduled, clock=lambda: self.synth.observe_clock(), now_ns=now_ns
        )
        self.channels = ChannelAllocator(self.synth.channels)
        self._held: dict[Hashable, HeldNotes] = {LOCAL: HeldNotes()}  # what each player holds on the synth
        self._lock = threading.Lock()  # held notes and the recorder
        self._synth_lock = threading.RLock()  # every call into self.synth
        self._subscribers: list[Callable[[m.EngineEvent], None]] = []
        self._played: deque[tuple[int, MusicEvent]] = deque()
        self._played_pending = False  # a flush is armed
        self._played_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.local_events = 0

    # ---- lifecycle and events --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        settle_gc()  # only under the entry point's tuned_interpreter(): a library leaves the GC alone
        channel, _ = self.channels.acquire(LOCAL)
        self._synth_program(channel, self.core.instrument)
        self.scheduler.start()
        await self.session.start()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        return await self.session.wait_connected(timeout)

    async def close(self) -> None:
        await self.session.close()
        self._execute(self.core.close())
        self.scheduler.stop()

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

    # ---- what the core knows -----------------------------------------------------------------------------

    @property
    def me(self) -> m.UserInfo | None:
        return self.core.me

    @property
    def room(self) -> m.RoomInfo | None:
        return self.core.room

    @property
    def rooms(self) -> dict[str, m.RoomSummaryInfo]:
        return self.core.rooms

    @property
    def preset(self) -> LatencyPreset:
        return self.core.preset

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
        return self.core.rtt_ms

    @property
    def clock_jitter_ms(self) -> float | None:
        estimate = self.session.clock.estimate
        return estimate.jitter_us / 1000 if estimate else None

    def player_stats(self, user_id: int) -> m.PlayerStats | None:
        return self.core.player_stats(user_id)

    def all_player_stats(self) -> list[m.PlayerStats]:
        return [s for uid in list(self.core.players) if (s := self.player_stats(uid)) is not None]

    def set_latency_preset(self, preset: LatencyPreset | str) -> None:
        self.core.set_latency_preset(preset)

    # ---- local play -------------------------------------------------------------------------------------

    def play_local(self, event: MusicEvent) -> None:
        """A local key/pedal event (stamped with its capture time): send it, sound it, record it."""
        self._execute(self.core.local_input(event, self._now_ns()))
        if self.core.link.has_pending:
            self.session.flush_soon()

    def attach_midi_out(self, out: MidiOutSink | None) -> None:
        """Send remote players to `out` too from now on (None: stop), starting with each one's instrument."""
        self.midi_out = out
        if out is not None:
            for uid, player in list(self.core.players.items()):
                channel = self.channels.channel_of(uid)
                if channel is not None:
                    out.program(channel, player.info.instrument)

    def set_instrument(self, program: int) -> bool:
        return self._run(self.core.set_instrument(program))

    # ---- running the core's effects ------------------------------------------------------------------------

    def _execute(self, effects: Sequence[Effect]) -> None:
        """Run the effects the session shell passes on (everything but sending); on the event loop."""
        if self._played_timer is not None:  # a flush is armed: deliver what played since, on this wake
            self._drain_played()
            self._arm_played()
        for effect in effects:
            if isinstance(effect, Notify):
                self._emit(effect.event)
            elif isinstance(effect, ScheduleNote):
                self.scheduler.schedule(effect.due_ns, effect.player, effect.event)
                self._midi_out(effect)
            elif isinstance(effect, PlayLocal):
                self._play_local(effect.event)
            elif isinstance(effect, AddPlayer):
                self._add_player(effect.player, effect.name, effect.instrument)
            elif isinstance(effect, SetInstrument):
                self._set_instrument(effect.player, effect.program)
            elif isinstance(effect, ReleasePlayer):
                self._release(effect.player, effect.forget)

    def _play_local(self, event: MusicEvent) -> None:
        channel = self.channels.channel_of(LOCAL)
        if channel is not None:
            self._sound(channel, event)
        self.local_events += 1
        with self._lock:
            self._held[LOCAL].apply(event)
            self._record(LOCAL, event)

    def _add_player(self, player: Hashable, name: str, instrument: int) -> None:
        if player != LOCAL:
            channel, _ = self.channels.acquire(player)
            self._synth_program(channel, instrument)
            if self.midi_out is not None:
                self.midi_out.program(channel, instrument)
            with self._lock:
                self._held[player] = HeldNotes()
        if self.recorder is not None:
            self.recorder.add_player(player, name, instrument)

    def _set_instrument(self, player: Hashable, program: int) -> None:
        channel = self.channels.channel_of(player)
        if channel is not None:
            self._synth_program(channel, program)
            if self.midi_out is not None and isinstance(player, int):
                # Between the notes played around it: a note is due at its capture time plus the player's
                # playout delay, and the change carries no capture time, so it is estimated from the
                # player's median transit (within the path's jitter of where it was played).
                stats = self.core.player_stats(player)
                ahead_ms = stats.delay_ms - (stats.transit_ms or 0.0) if stats is not None else 0.0
                self.midi_out.program(channel, program, self._now_ns() + int(ahead_ms * 1_000_000))
        if self.recorder is not None:
            self.recorder.set_program(player, program, self._now_ns())

    def _release(self, player: Hashable, forget: bool) -> None:
        """Cancel the player's pending notes, silence its channel, record the releases of what it held."""
        self.scheduler.cancel(player)
        channel = self.channels.channel_of(player)
        if channel is not None:
            self._synth_release(channel)
            if self.midi_out is not None and player != LOCAL:
                self.midi_out.release(channel)
        with self._lock:
            held = self._held.pop(player, None) if forget else self._held.get(player)
            for event in held.release(self._now_ns()) if held is not None else ():
                self._record(player, event)
        if forget:
            self.channels.release(player)

    def _midi_out(self, note: ScheduleNote) -> None:
        channel = self.channels.channel_of(note.player)
        if self.midi_out is not None and channel is not None:
            self.midi_out.schedule(note.due_ns, channel, note.event)

    def _sound_at(self, due_ns: int, player_key: Hashable, event: MusicEvent) -> int:
        """As a remote event arrives: queue it in the synth for its due time; returns how late it came."""
        channel = self.channels.channel_of(player_key)
        if channel is None:
            return 0
        with self._synth_lock:
            late = self._guarded(self.synth, self.synth.play_at, channel, event, due_ns)
        return late if isinstance(late, int) else 0

    def _played_scheduled(self, due_ns: int, player_key: Hashable, event: MusicEvent) -> None:
        """On the loop, once due (the synth has it queued): held notes, the recorder, subscribers."""
        assert isinstance(player_key, int)
        held = self._held.get(player_key)
        if held is None:
            return
        with self._lock:
            held.apply(event)
            self._record(player_key, event)
        loop = self._loop
        if loop is not None:
            self._played.append((player_key, event))
            if not self._played_pending:  # no flush armed: deliver on the next turn of the loop
                self._played_pending = True
                loop.call_soon(self._flush_played)

    def _flush_played(self) -> None:
        """On the loop (the first event after a pause, or the timer): hand played events to subscribers.

        While notes keep coming the flush stays armed as a timer, so subscribers get one batch per interval;
        each incoming message also flushes and pushes the timer back, so in a busy room the timer hardly
        ever fires and played notes ride along with the arrivals' wake-ups.
        """
        self._played_timer = None
        if self._drain_played():
            self._arm_played()
            return
        self._played_pending = False  # disarmed: the next played event arms it again

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

    # ---- the synth (pianorhythm.tui.synth_owner) ---------------------------------------------------------

    def _channel_states(self) -> list[tuple[int, int, bool]]:
        """(channel, program, sustain pedal down) for us and every remote player with a channel."""
        programs: dict[Hashable, int] = {LOCAL: self.core.instrument}
        programs.update((uid, p.info.instrument) for uid, p in list(self.core.players.items()))
        states: list[tuple[int, int, bool]] = []
        for player, program in programs.items():
            channel, held = self.channels.channel_of(player), self._held.get(player)
            if channel is not None:
                states.append((channel, program, held is not None and held.pedal))
        return states

    # ---- recording ---------------------------------------------------------------------------------------

    def _record(self, player: Hashable, event: MusicEvent) -> None:
        if self.recorder is not None:
            self.recorder.record(player, event)


async def play_file_events(
    engine: Engine, events: Iterable[MusicEvent], now_ns: Callable[[], int] = time.perf_counter_ns
) -> int:
    """Play timed events (time_ns relative to the start of the file) into the room as if from a keyboard.

    Each event is stamped with its intended time, so the rhythm that goes on the wire is the file's even if
    the event loop wakes a little late. Returns how many events were played. Cancelled (the user stops
    it), it releases every key and pedal it holds first, so nothing sticks for the listeners.
    """
    from pianorhythm.tui.midi.fileplayer import play_events

    return await play_events(events, engine.play_local, start_ns=now_ns() + 50_000_000, clock=now_ns)
