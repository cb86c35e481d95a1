"""What the app starts from: options from the command line and the config file, and the real engine.

options = options_from_args(args)          # the saved config with the flags on top, the --play file read
engine = await make_engine(options, url, backoff)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pianorhythm.client import model as m
from pianorhythm.tui import config as cfg
from pianorhythm.tui.messages import RoomView
from pianorhythm.tui.midi.fileplayer import MidiFileData, MidiFileError, read_midi_file
from pianorhythm.tui.net.backoff import Backoff

log = logging.getLogger(__name__)


class ObservedBackoff(Backoff):
    """The session's backoff, remembering its last delay so the status bar can count down."""

    def __init__(self) -> None:
        super().__init__()
        self.last_delay: float | None = None
        self.chosen_at = 0.0

    def next_delay(self) -> float | None:
        delay = super().next_delay()
        self.last_delay, self.chosen_at = delay, time.monotonic()
        return delay


@dataclass
class AppOptions:
    """Everything the app needs from the command line and the config file."""

    config: cfg.Config  # the saved settings
    effective: cfg.Config  # with flags applied
    connect: str | None = None
    no_audio: bool = False
    midi_api: str | None = None
    config_file: Path | None = None
    record: str | None = None
    insecure: bool = False  # --insecure: accept a wss:// certificate that cannot be verified
    name_is_fallback: bool = False  # no --name and none in the config: the OS user's name stands in
    config_problems: tuple[str, ...] = ()  # what in the config file could not be used, one sentence each
    config_broken: bool = False  # the file did not parse (it is kept aside when settings are next saved)
    play: str | None = None  # --play: the file, read (and so checked) before the UI starts
    song: MidiFileData | None = None
    exit_after_play: bool = False


class FileFlagError(Exception):
    """--play names a file that cannot be played, or --record one that cannot be written; str(): why."""


def options_from_args(args: argparse.Namespace, config_file: Path | None = None) -> AppOptions:
    """Raises FileFlagError (one sentence) for a --play or --record file that will not do."""
    play, record = getattr(args, "play", None), getattr(args, "record", None)
    try:
        song = read_midi_file(play) if play else None
    except MidiFileError as error:
        raise FileFlagError(f"--play {play}: {error}") from error
    if record:
        from pianorhythm.tui.midi.recorder import unwritable  # mido, only when recording

        problem = unwritable(record)
        if problem:
            raise FileFlagError(f"--record {record}: {problem}.")
    path = config_file or cfg.config_path()
    loaded = cfg.read(path)
    saved = loaded.config
    effective = cfg.with_flags(saved, args)
    fallback = not effective.name
    if fallback:
        effective = replace(effective, name=_default_name())
    return AppOptions(
        config=saved,
        effective=effective,
        connect=getattr(args, "connect", None),
        no_audio=bool(getattr(args, "no_audio", False)),
        midi_api=getattr(args, "midi_api", None),
        config_file=path,
        record=record,
        insecure=bool(getattr(args, "insecure", False)),
        name_is_fallback=fallback,
        config_problems=loaded.problems,
        config_broken=loaded.broken,
        play=play,
        song=song,
        exit_after_play=bool(getattr(args, "exit_after_play", False)),
    )


def remember_choices(options: AppOptions, args: argparse.Namespace) -> None:
    """Save what the next run should start from: the server given with --connect, and the first --name
    given while the config has none (so a server reached at another address knows you by it too)."""
    if options.config_broken:
        return  # the user's file stays as it is until a setting is changed (then it is kept aside)
    saved = options.config
    if options.connect:
        saved = replace(saved, last_server=options.connect)
    if getattr(args, "name", None) and not saved.name:
        saved = replace(saved, name=args.name)
    if saved == options.config:
        return
    options.config = saved
    try:
        cfg.save(options.config, options.config_file)
    except OSError as error:
        log.warning("config not saved: %s", error)


def _default_name() -> str:
    import getpass

    try:
        return getpass.getuser()[:32] or "player"
    except Exception:
        return "player"


def room_view(room: m.RoomSummaryInfo) -> RoomView:
    return RoomView(
        name=room.name,
        players=room.member_count,
        limit=room.user_limit,
        locked=room.locked,
        owner=room.owner_name,
        is_lobby=room.is_lobby,
    )


async def make_engine(options: AppOptions, url: str, backoff: Backoff) -> Any:
    """The real engine with the synth the settings ask for (opened off the event loop: it may be slow)."""
    from pianorhythm.playout import LatencyPreset
    from pianorhythm.tui.audio.drivers import open_configured_synth
    from pianorhythm.tui.engine import Engine, EngineConfig
    from pianorhythm.tui.midi.recorder import MidiRecorder

    eff = options.effective
    synth = await asyncio.to_thread(open_configured_synth, eff, no_audio=options.no_audio)
    config = EngineConfig(
        url=url,
        name=eff.name,
        color=eff.color,
        room=eff.room or None,
        preset=LatencyPreset(eff.latency)
        if eff.latency in ("low", "balanced", "safe")
        else LatencyPreset.BALANCED,
        token_dir=str(cfg.config_dir()),
        name_is_fallback=options.name_is_fallback,
        backoff=backoff,
        insecure=options.insecure,
    )
    recorder = MidiRecorder(options.record) if options.record else None
    engine = Engine(config, synth=synth, recorder=recorder)
    if eff.instrument:
        engine.set_instrument(eff.instrument)
    return engine
