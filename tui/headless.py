"""`pianorhythm-tui --headless`: the client engine (the same client core as the TUI) without a UI, logging
room events as lines on stdout.

    pianorhythm-tui --headless --connect ws://host:8765/api/websocket --room jam --name bot \
        [--play in.mid [--exit-after-play]] [--record out.mid] [--midi-in PORT] [--midi-out PORT] \
        [--duration S]

It reads the TUI's config.toml ($PIANORHYTHM_CONFIG_DIR or the platform config dir) with the flags on
top: name, colour, room, latency, instrument, SoundFont, audio driver and levels. With no name configured
or given it is `bot-NNNN`. MIDI input opens only with --midi-in (a bot does not take your keyboard); MIDI
out (--midi-out or the config's midi_out) sends remote players to that port, with `midi-out ...` lines.
One line says which audio driver plays (`audio fluidsynth/...`), or a warning on stderr why it is silent.

A wss:// server's certificate is verified (system store or $SSL_CERT_FILE) unless --insecure is given;
one that cannot be verified ends the run at once with one sentence on stderr (exit 1).

Lines look like `12:00:01.234 chat alice: hi`; one `notes` line per second while notes flow. It exits on
SIGINT/SIGTERM, after --duration, or when --play finishes with --exit-after-play, and then writes the
recording. Exit status: 0 ok, 1 could not join (within 15 s or --duration), 2 bad arguments, 130
interrupted before joining.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.events import MusicEvent
from pianorhythm.playout import DEFAULT_PRESET, LatencyPreset
from pianorhythm.tui import config as cfg
from pianorhythm.tui.engine import Engine, EngineConfig, play_file_events
from pianorhythm.tui.file_play import DRAIN_S
from pianorhythm.tui.net.tls import insecure_warning

if TYPE_CHECKING:
    from pianorhythm.tui.audio.synth import Synth
    from pianorhythm.tui.midi.fileplayer import MidiFileData
    from pianorhythm.tui.midi.output import MidiOut
    from pianorhythm.tui.midi.recorder import MidiRecorder

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
_STOPPED = (ConnectionState.GAVE_UP, ConnectionState.REPLACED)
_PRESETS: Final = {preset.value for preset in LatencyPreset}


def _line(text: str) -> None:
    stamp = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"{stamp} {text}", flush=True)


class _Printer:
    """Turns engine events into log lines; counts notes per second."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.names: dict[int, str] = {}
        self.sent = 0
        self.received = 0
        self.late = 0
        self._window_sent = 0
        self._window_received = 0

    def __call__(self, event: m.EngineEvent) -> None:
        match event:
            case m.ConnectionChanged(state=state, detail=detail, retry_in_s=retry_in):
                retry = f" retry in {retry_in:.1f} s" if retry_in is not None else ""
                _line(f"connection {state.value}" + (f" ({detail})" if detail else "") + retry)
            case m.SynthFailed(message=message):
                _line(message)
            case m.Welcomed(me=me, resumed=resumed):
                _line(f"welcome id={me.id} name={me.name}" + (" resumed" if resumed else ""))
            case m.RoomEntered(room=room, resumed=resumed):
                self.names = {u.id: u.name for u in room.users}
                users = ", ".join(u.name for u in room.users)
                _line(f"room {room.name} users={len(room.users)} [{users}]" + (" resumed" if resumed else ""))
            case m.UserJoined(user=user):
                self.names[user.id] = user.name
                _line(f"join {user.name} id={user.id}")
            case m.UserLeft(user_id=uid, name=name, reason=reason):
                _line(f"leave {name} id={uid} ({reason})")
            case m.UserUpdated(user=user):
                self.names[user.id] = user.name
            case m.ChatReceived(line=chat):
                _line(f"chat {chat.author}: {chat.content}")
            case m.ChatHistory(lines=lines, catch_up=True):
                for chat in lines:
                    _line(f"chat {chat.author}: {chat.content} (missed)")
            case m.NotesScheduled(events=events, late=late):
                self.received += len(events)
                self._window_received += len(events)
                self.late += late
            case m.NotesPlayed(events=events, local=True):
                self.sent += len(events)
                self._window_sent += len(events)
            case m.Removed(reason=reason, room=room):
                _line(f"removed from {room} ({reason})")
            case m.ServerError(code_name=code, message=message):
                _line(f"error {code}: {message}")
            case m.CommandOutput(ok=ok, output=output):
                _line(f"command {'ok' if ok else 'failed'}: {output}")
            case _:
                pass

    def tick(self) -> None:
        if self._window_sent or self._window_received:
            rtt = self.engine.rtt_ms
            _line(
                f"notes sent/s={self._window_sent} received/s={self._window_received}"
                + (f" rtt={rtt:.1f}ms" if rtt is not None else "")
                + (f" delays=[{self.delays()}]" if self._window_received else "")
            )
        self._window_sent = self._window_received = 0

    def delays(self) -> str:
        """Per remote player: playout delay, late notes, path spread (as in the players list)."""
        return " ".join(
            f"{self.names.get(s.user_id, s.user_id)}:{s.delay_ms:.1f}ms/late{s.late_count}"
            + ("" if s.path_spread_ms is None else f"/spread{s.path_spread_ms:.1f}ms")
            for s in self.engine.all_player_stats()
        )

    def summary(self) -> None:
        delays = self.delays()
        late = self.engine.scheduler.lateness_quantiles_ms(0.5, 0.99)
        timing = f" queue_late_p50={late[0]:.3f}ms queue_late_p99={late[1]:.3f}ms" if late else ""
        _line(f"stats sent={self.sent} received={self.received} late={self.late} delays=[{delays}]{timing}")


def _open_recorder(path: str) -> MidiRecorder:
    from pianorhythm.tui.midi.recorder import MidiRecorder

    return MidiRecorder(path)


def _settings(args: argparse.Namespace) -> tuple[cfg.Config, bool]:
    """config.toml with the flags on top, as the TUI reads it; with no name configured, a bot-NNNN one
    (then True: a stand-in name, which does not rename a resumed identity)."""
    settings = cfg.with_flags(cfg.load(cfg.config_path()), args)
    if settings.name:
        return settings, False
    return replace(settings, name=f"bot-{random.randint(1000, 9999)}"), True


def _open_synth(settings: cfg.Config, no_audio: bool) -> Synth:
    """The synth the settings ask for, and one line: the driver that plays, or why nothing does."""
    from pianorhythm.tui.audio.drivers import open_configured_synth

    synth = open_configured_synth(settings, no_audio=no_audio)
    if not synth.silent:
        _line(f"audio {synth.description}")
    elif not no_audio:
        print(f"warning: {getattr(synth, 'reason', 'playing silently')}", file=sys.stderr, flush=True)
    return synth


def _open_midi_input(args: argparse.Namespace, on_event: Callable[[MusicEvent], None]) -> Any:
    from pianorhythm.tui.midi.input import open_midi_input_from_args

    return open_midi_input_from_args(args, on_event, lambda status: _line(f"midi {status}"))


def _open_midi_out(settings: cfg.Config) -> MidiOut | None:
    """With --midi-out (or the config's midi_out): remote players to that port too; lines say how it goes."""
    if not settings.midi_out:
        return None
    from pianorhythm.tui.midi.output import open_midi_out

    loop = asyncio.get_running_loop()
    return open_midi_out(settings.midi_out, settings.midi_api, _midi_out_line, loop)


def _midi_out_line(status: str) -> None:
    _line(f"midi-out {status}")


async def _run(args: argparse.Namespace) -> int:
    from pianorhythm.tui.midi.fileplayer import MidiFileError, read_midi_file

    song: MidiFileData | None = None
    if args.play:
        try:
            song = read_midi_file(args.play)
        except MidiFileError as error:
            print(f"error: --play {args.play}: {error}", file=sys.stderr)
            return 2
    settings, name_is_fallback = _settings(args)
    room = settings.room or None
    synth = _open_synth(settings, args.no_audio)
    recorder = _open_recorder(args.record) if args.record else None
    config = EngineConfig(
        url=args.connect,
        name=settings.name,
        color=settings.color,
        room=room,
        preset=LatencyPreset(settings.latency) if settings.latency in _PRESETS else DEFAULT_PRESET,
        token_dir=str(cfg.config_dir()),
        name_is_fallback=name_is_fallback,
        insecure=args.insecure,
    )
    warning = insecure_warning(args.connect, args.insecure)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    engine = Engine(config, synth=synth, recorder=recorder)
    midi_out = _open_midi_out(settings)
    engine.attach_midi_out(midi_out)
    if settings.instrument:
        engine.set_instrument(settings.instrument)
    printer = _Printer(engine)
    engine.subscribe(printer)
    stop = asyncio.Event()
    interrupted = asyncio.Event()  # SIGINT/SIGTERM
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(_relay(interrupted, stop))]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, interrupted.set)
    in_room = asyncio.Event()

    def watch(event: m.EngineEvent) -> None:
        if isinstance(event, m.RoomEntered) and (not room or event.room.name == room):
            in_room.set()
        elif isinstance(event, m.ConnectionChanged) and event.state in _STOPPED:
            stop.set()  # gave up, or our identity connected elsewhere: no one here can press retry

    engine.subscribe(watch)
    status = 0
    midi = None
    try:
        await engine.start()
        if args.duration is not None:
            tasks.append(asyncio.create_task(_stop_after(args.duration, stop)))
        waiter = asyncio.create_task(in_room.wait())
        stopper = asyncio.create_task(stop.wait())
        timeout = CONNECT_TIMEOUT_S if args.duration is None else min(CONNECT_TIMEOUT_S, args.duration)
        await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
        if not in_room.is_set():
            if interrupted.is_set():
                status = 130
            elif engine.session.refused:
                print(f"error: {engine.session.detail}", file=sys.stderr)
                status = 1
            else:
                print(
                    f"error: could not join {room or 'the lobby'} on {args.connect} "
                    f"({engine.session.detail or 'no answer'}); check the URL and that the server runs.",
                    file=sys.stderr,
                )
                status = 1
            return status
        if args.midi_in:
            midi = _open_midi_input(args, engine.play_local)
        tick = asyncio.create_task(_ticker(printer))
        tasks.append(tick)
        if song is not None:
            done = stop if args.exit_after_play else None
            tasks.append(asyncio.create_task(_play(engine, args.play, song, done)))
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if midi is not None:
            with contextlib.suppress(Exception):
                midi.close()
        printer.summary()
        await engine.close()
        if midi_out is not None:
            midi_out.close()
        synth.close()
        if recorder is not None:
            recorder.close()
            _line(f"recorded {args.record} events={recorder.event_count}")
    return status


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _stop_after(seconds: float, stop: asyncio.Event) -> None:
    await asyncio.sleep(seconds)
    stop.set()


async def _ticker(printer: _Printer) -> None:
    while True:
        await asyncio.sleep(1.0)
        printer.tick()


async def _play(engine: Engine, path: str, song: MidiFileData, stop: asyncio.Event | None) -> None:
    program = song.first_program()
    if program is not None:
        engine.set_instrument(program)
    _line(f"play {path} events={len(song.events)}")
    count = await play_file_events(engine, song.music())
    _line(f"played {path} events={count}")
    if stop is not None:
        await asyncio.sleep(DRAIN_S)
        stop.set()


def run_from_args(args: argparse.Namespace) -> int:
    if not args.connect:
        print(
            "error: --headless needs --connect URL (e.g. ws://127.0.0.1:8765/api/websocket); "
            "start a server with `pianorhythm-tui --server`.",
            file=sys.stderr,
        )
        return 2
    if args.record:
        from pianorhythm.tui.midi.recorder import unwritable

        problem = unwritable(args.record)
        if problem:
            print(f"error: --record {args.record}: {problem}.", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
