"""The built wheel installs one package, `pianorhythm`: a fresh venv with it answers `pianorhythm-tui --help`,
and has no top-level `tui` or `server` to import.

The wheel is built the way pip builds it (PEP 517, through hatchling from the dev venv: no index needed) and
installed with `--no-deps` into a venv made without `--system-site-packages`. Its runtime dependencies, the
wheel's own Requires-Dist and theirs (no dev extra), are linked in from the dev venv through a .pth file:
a dependency the code needs but the wheel does not declare is missing there, as in a real install. Installing
them from the index instead works too but takes 3 times as long (8 s) and needs the index at test time.
"""

from __future__ import annotations

import email
import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pianorhythm import __version__

ROOT = Path(__file__).resolve().parent.parent
DIST_INFO = f"pianorhythm_tui-{__version__}.dist-info"


def _run(args: list[str | Path], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=check
    )


def _runtime_entries(requires: list[str]) -> set[Path]:
    """The dev venv's top-level site-packages entries (packages, modules, dist-infos) of the distributions
    that `requires` pulls in, transitively, with the extras asked for and no others."""
    distributions: dict[str, importlib.metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [(text, "") for text in requires]  # (requirement, the extra of the requirer it came under)
    while todo:
        text, extra = todo.pop()
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        distribution = distributions.setdefault(name, importlib.metadata.distribution(name))
        for wanted in ("", *requirement.extras):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(sub, wanted) for sub in distribution.requires or []]
    entries = set()
    for distribution in distributions.values():
        assert distribution.files is not None, f"{distribution.name} has no RECORD"
        tops = {f.parts[0] for f in distribution.files} - {"..", "__pycache__"}
        entries |= {Path(str(distribution.locate_file(top))) for top in tops}
    return entries


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, set[str]]:
    """(the wheel, the venv, the names the install added to its site-packages)."""
    work = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work / "dist", ROOT], work)
    [wheel] = (work / "dist").glob("*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([python, "-c", purelib], work).stdout.strip())
    with zipfile.ZipFile(wheel) as archive:
        metadata = email.message_from_bytes(archive.read(f"{DIST_INFO}/METADATA"))
    deps = work / "deps"
    deps.mkdir()
    for entry in _runtime_entries(metadata.get_all("Requires-Dist") or []):
        (deps / entry.name).symlink_to(entry)
    (site / "runtime_dependencies.pth").write_text(f"{deps}\n")

    before = {p.name for p in site.iterdir()}
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], work)
    added = {p.name for p in site.iterdir()} - before
    return wheel, venv, added


def test_the_wheel_holds_only_pianorhythm(installed: tuple[Path, Path, set[str]]) -> None:
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read(f"{DIST_INFO}/RECORD").decode()
        names = archive.namelist()
    assert {line.split("/")[0] for line in record.splitlines()} == {"pianorhythm", DIST_INFO}
    # the symlinked folders arrive as files, with their non-Python data
    for path in ("pianorhythm/tui/cli.py", "pianorhythm/tui/app.tcss", "pianorhythm/server/core/relay.py"):
        assert path in names


def test_the_install_adds_only_pianorhythm(installed: tuple[Path, Path, set[str]]) -> None:
    _, venv, added = installed
    assert added == {"pianorhythm", DIST_INFO}
    assert not (venv / "bin" / "tui").exists()


def test_the_command_runs_and_the_old_names_are_gone(installed: tuple[Path, Path, set[str]]) -> None:
    _, venv, _ = installed
    command, python = venv / "bin" / "pianorhythm-tui", venv / "bin" / "python"
    help_text = _run([command, "--help"], venv).stdout
    assert help_text.startswith("usage: pianorhythm-tui")
    for name in ("tui", "server"):
        failed = _run([python, "-c", f"import {name}"], venv, check=False)
        assert failed.returncode == 1 and f"No module named '{name}'" in failed.stderr
    both = "import pianorhythm.server.main, pianorhythm.tui.app as app; print(app.__file__)"
    assert Path(_run([python, "-c", both], venv).stdout.strip()).is_relative_to(venv)


def test_one_version_everywhere(installed: tuple[Path, Path, set[str]]) -> None:
    _, venv, _ = installed
    assert _run([venv / "bin" / "pianorhythm-tui", "--version"], venv).stdout.strip() == (
        f"pianorhythm-tui {__version__}"
    )
    versions = (
        "import importlib.metadata as m, pianorhythm as p\nprint(m.version('pianorhythm-tui'), p.__version__)"
    )
    assert _run([venv / "bin" / "python", "-c", versions], venv).stdout.split() == [__version__, __version__]
