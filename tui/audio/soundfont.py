"""Finding a SoundFont (.sf2) to play with.

Order: an explicit path (--soundfont), then $PIANORHYTHM_SOUNDFONT, then `soundfonts/*.sf2` in the
repository, then the General MIDI fonts Debian/Ubuntu packages install. An explicit path or environment
variable that names a missing file is an error (the user asked for it); finding nothing at all is not
(the client plays silently and says why).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_VAR: Final = "PIANORHYTHM_SOUNDFONT"
REPO_SOUNDFONT_DIR: Final = Path(__file__).resolve().parents[2] / "soundfonts"
SYSTEM_SOUNDFONTS: Final[tuple[Path, ...]] = (
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/soundfonts/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
    Path("/opt/homebrew/share/soundfonts/default.sf2"),
    Path("/usr/local/share/soundfonts/default.sf2"),
)
INSTALL_HINT: Final = "install one (Debian/Ubuntu: apt install timgm6mb-soundfont) or pass --soundfont PATH"


class SoundfontError(Exception):
    """A SoundFont the user named does not exist or is not a file; str() is one sentence with the fix."""


@dataclass(frozen=True, slots=True)
class SoundfontChoice:
    """The SoundFont to load (None: none found) and, in words, where it came from or why there is none."""

    path: Path | None
    reason: str


def _check_named(path: Path, source: str) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise SoundfontError(
            f"SoundFont {str(path)!r} from {source} does not exist; fix the path or {INSTALL_HINT}."
        )
    return path.resolve()


def repo_soundfonts(directory: Path = REPO_SOUNDFONT_DIR) -> list[Path]:
    """The .sf2/.sf3 files dropped into the repository's soundfonts/ folder, sorted by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in (".sf2", ".sf3") and p.is_file())


def find_soundfont(
    explicit: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    repo_dir: Path = REPO_SOUNDFONT_DIR,
    system: Sequence[Path] = SYSTEM_SOUNDFONTS,
) -> SoundfontChoice:
    """Pick the SoundFont to load; raises SoundfontError when an explicitly named one is missing."""
    if explicit:
        return SoundfontChoice(_check_named(Path(explicit), "--soundfont"), "given with --soundfont")
    environ = os.environ if env is None else env
    if environ.get(ENV_VAR):
        return SoundfontChoice(_check_named(Path(environ[ENV_VAR]), f"${ENV_VAR}"), f"from ${ENV_VAR}")
    found = repo_soundfonts(repo_dir)
    if found:
        return SoundfontChoice(found[0], f"found in {repo_dir}")
    for candidate in system:
        if candidate.is_file():
            return SoundfontChoice(candidate.resolve(), f"system General MIDI font {candidate}")
    return SoundfontChoice(None, f"no SoundFont found: {INSTALL_HINT}")


def list_soundfonts(
    *,
    repo_dir: Path = REPO_SOUNDFONT_DIR,
    system: Sequence[Path] = SYSTEM_SOUNDFONTS,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """Every SoundFont the client can see (for a picker): $PIANORHYTHM_SOUNDFONT, soundfonts/, system fonts.

    Symlinks to the same file (default-GM.sf2 -> TimGM6mb.sf2) are listed once, under the first name seen.
    """
    environ = os.environ if env is None else env
    candidates: list[Path] = []
    if environ.get(ENV_VAR):
        candidates.append(Path(environ[ENV_VAR]).expanduser())
    candidates += repo_soundfonts(repo_dir)
    candidates += list(system)
    seen: set[Path] = set()
    result: list[Path] = []
    for path in candidates:
        if not path.is_file():
            continue
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            result.append(path)
    return result
