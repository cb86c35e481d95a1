"""What the app starts from: options from the command line and the config file, and the real engine.

options = options_from_args(args)          # the saved config with the flags on top
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

from tui import config as cfg
from tui.messages import RoomView
from tui.net import model as m
from tui.net.backoff import Backoff

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


def options_from_args(args: argparse.Namespace, config_file: Path | None = None) -> AppOptions:
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
        record=getattr(args, "record", None),
        insecure=bool(getattr(args, "insecure", False)),
        name_is_fallback=fallback,
        config_problems=loaded.problems,
        config_broken=loaded.broken,
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
    from tui.audio.drivers import open_synth
    from tui.engine import Engine, EngineConfig

    eff = options.effective
    synth = await asyncio.to_thread(
        open_synth, eff.soundfont or None, eff.audio_driver or None, no_audio=options.no_audio
    )
    synth.set_volume(eff.volume)
    synth.set_reverb(eff.reverb)
    synth.set_chorus(eff.chorus)
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
    engine = Engine(config, synth=synth)
    if eff.instrument:
        engine.set_instrument(eff.instrument)
    return engine
