"""The user's settings: a flat TOML file in the platform config dir, flags on top, UI changes saved back.

    ~/.config/pianorhythm-tui/config.toml   (PIANORHYTHM_CONFIG_DIR overrides the directory)

Read with tomllib; written by `dumps`, which handles exactly the flat values this file holds (strings,
integers, floats, booleans), so no TOML-writing dependency is needed. Unknown keys are kept as they were.
A file that does not parse, or a value of the wrong type, is named with its line (`read().problems`) and the
defaults stand in for that run; the broken file is kept aside, never overwritten, when settings are saved.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

from platformdirs import user_config_dir

log = logging.getLogger(__name__)

ENV_DIR: Final = "PIANORHYTHM_CONFIG_DIR"
APP_NAME: Final = "pianorhythm-tui"
FILE_NAME: Final = "config.toml"


@dataclass(frozen=True, slots=True)
class Config:
    name: str = ""
    color: str = ""
    last_server: str = ""
    room: str = ""
    midi_device: str = ""
    midi_api: str = ""
    midi_out: str = ""  # MIDI output port (substring of its name) remote players are sent to; "" none
    audio_driver: str = "auto"
    soundfont: str = ""
    instrument: int = 0
    latency: str = "balanced"
    volume: float = 0.8
    reverb: float = 0.2
    chorus: float = 0.0
    note_length_s: float = 0.3
    keys: str = "auto"  # auto | press-release | fixed (pianorhythm.tui.keys.kitty)
    theme: str = ""


def config_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    return Path(env).expanduser() if env else Path(user_config_dir(APP_NAME))


def config_path() -> Path:
    return config_dir() / FILE_NAME


def _coerce(default: object, value: object) -> object | None:
    """`value` as the type of `default`, or None when it does not fit."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(default, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else None  # type: ignore[arg-type]
    if isinstance(default, str):
        return value if isinstance(value, str) else None
    return None


@dataclass(frozen=True, slots=True)
class Loaded:
    """A config file as read: the settings, and one sentence per thing in it that could not be used."""

    config: Config
    problems: tuple[str, ...] = ()
    broken: bool = False  # the file did not parse: save() keeps it aside before writing


_TYPE_NAMES: Final = {bool: "true or false", int: "a whole number", float: "a number", str: "a quoted string"}


def from_mapping(data: dict[str, Any], text: str = "", where: str = "config") -> tuple[Config, list[str]]:
    """The settings in `data`, and a sentence for each value of the wrong type (with its line in `text`)."""
    base = Config()
    values: dict[str, object] = {}
    problems: list[str] = []
    for f in fields(Config):
        if f.name in data:
            default = getattr(base, f.name)
            coerced = _coerce(default, data[f.name])
            if coerced is None:
                line = _line_of(text, f.name)
                at = f"{where} line {line}" if line else where
                problems.append(
                    f"{at}: {f.name} should be {_TYPE_NAMES[type(default)]}, not {data[f.name]!r}; "
                    f"using {default!r}."
                )
            else:
                values[f.name] = coerced
    return replace(base, **values), problems  # type: ignore[arg-type]


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    return next((n for n, line in enumerate(text.splitlines(), 1) if pattern.match(line)), None)


def read(path: Path | None = None) -> Loaded:
    """The saved config, or defaults when the file is missing; what could not be used is said (and logged)
    in `problems`, never fatal. A file that does not parse is left as it is."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Loaded(Config())
    except (OSError, UnicodeDecodeError) as error:
        return _logged(Loaded(Config(), (f"Cannot read {path} ({error}); using the default settings.",)))
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problem = f"{path} is not valid TOML: {error}. Using the default settings until it is fixed."
        return _logged(Loaded(Config(), (problem,), broken=True))
    config, problems = from_mapping(data, text, str(path))
    return _logged(Loaded(config, tuple(problems)))


def _logged(loaded: Loaded) -> Loaded:
    for problem in loaded.problems:
        log.warning("%s", problem)
    return loaded


def load(path: Path | None = None) -> Config:
    """The saved config (see `read`)."""
    return read(path).config


def _toml_string(value: str) -> str:
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("config values must be finite")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    raise TypeError(f"cannot write {type(value).__name__} to the config")


def dumps(values: dict[str, object]) -> str:
    lines = ["# pianorhythm-tui settings (edited by the app; flags override them)"]
    for key, value in values.items():
        if not key.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"bad config key {key!r}")
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def save(config: Config, path: Path | None = None) -> Path | None:
    """Write `config` (atomically: a temp file then rename), keeping keys this version does not know.

    A file there that does not parse is the user's, half-edited: it is first kept aside as
    `config.toml.broken-<time>`, whose path is returned (None when nothing was set aside).
    """
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, object] = {}
    kept: Path | None = None
    try:
        with path.open("rb") as file:
            extra = {k: v for k, v in tomllib.load(file).items() if k not in Config.__dataclass_fields__}
            extra = {k: v for k, v in extra.items() if isinstance(v, str | int | float | bool)}
    except FileNotFoundError:
        pass
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        kept = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, kept)
        log.warning("%s did not parse: kept it as %s before saving the settings", path, kept)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(dumps({**asdict(config), **extra}), encoding="utf-8")
    tmp.replace(path)
    return kept


def with_flags(config: Config, args: object) -> Config:
    """The config with command-line flags applied on top (flags win; they are not saved)."""
    flag_map = {
        "name": "name",
        "color": "color",
        "connect": "last_server",
        "room": "room",
        "midi_in": "midi_device",
        "midi_api": "midi_api",
        "midi_out": "midi_out",
        "audio_driver": "audio_driver",
        "soundfont": "soundfont",
        "latency": "latency",
        "keys": "keys",
    }
    values = {
        field_name: getattr(args, attr)
        for attr, field_name in flag_map.items()
        if isinstance(getattr(args, attr, None), str) and getattr(args, attr)
    }
    return replace(config, **values)
