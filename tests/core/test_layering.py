"""The layers of STYLE.md hold: the core and the server never load UI, MIDI, synth or network code they
must not, and only the command-line entry point reaches both the client and the server.

The one import name is `pianorhythm`: the client (folder tui/) is `pianorhythm.tui` and the relay (folder
server/) is `pianorhythm.server`, through the symlinks pianorhythm/tui and pianorhythm/server. A module
imported as top-level `tui` or `server` as well would be a second copy with its own globals (a monkeypatch
on one misses the other), and the wheel has no such names: nothing may use them."""

from __future__ import annotations

import ast
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT, RELAY = "pianorhythm.tui", "pianorhythm.server"
# Real folders only (os.walk does not follow the symlinks): each source file is read once.
SOURCE_FOLDERS = ("pianorhythm", "tui", "server", "tests", "bench")


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _modules(package: str, leave_out: frozenset[str] = frozenset()) -> list[str]:
    """`package` and every module below it, read from the folders (nothing imported), but `leave_out`."""
    names = [package]
    folder = ROOT.joinpath(*package.split("."))
    for info in pkgutil.iter_modules([str(folder)], prefix=f"{package}."):
        if info.name in leave_out or info.name.endswith("_pb2"):
            continue
        names += _modules(info.name) if info.ispkg else [info.name]
    return sorted(names)


def _loaded_after_import(modules: list[str]) -> set[str]:
    script = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    script += "print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(result.stdout.split())


def _libraries(loaded: set[str]) -> set[str]:
    return {name.split(".")[0] for name in loaded}


def test_the_walk_finds_every_layer() -> None:
    for name in ("tui", "server"):
        link = ROOT / "pianorhythm" / name
        assert link.is_symlink() and os.readlink(link) == f"../{name}", f"{link}: not a link to ../{name}"
    core = _modules("pianorhythm", leave_out=frozenset({CLIENT, RELAY}))
    assert "pianorhythm.playout" in core and not any(_under(m, CLIENT) or _under(m, RELAY) for m in core)
    assert f"{RELAY}.core.relay" in _modules(RELAY)
    assert f"{CLIENT}.net.session" in _modules(CLIENT)


def test_core_loads_no_io_ui_or_device_libraries() -> None:
    loaded = _loaded_after_import(_modules("pianorhythm", leave_out=frozenset({CLIENT, RELAY})))
    forbidden = {"textual", "rich", "websockets", "mido", "rtmidi", "fluidsynth", "sqlite3", "redis"}
    assert _libraries(loaded) & (forbidden | {"asyncio"}) == set()
    assert [m for m in loaded if _under(m, CLIENT) or _under(m, RELAY)] == []


def test_the_client_core_is_part_of_the_checked_core() -> None:
    """The client core (handle/tick/local_input, no I/O) is walked by the test above, module by module."""
    client = {name for name in _modules("pianorhythm") if name.startswith("pianorhythm.client")}
    expected = {"core", "effects", "model", "pages", "requests", "session"}
    assert {"pianorhythm.client"} | {f"pianorhythm.client.{name}" for name in expected} <= client


def test_server_loads_no_client_libraries() -> None:
    loaded = _loaded_after_import(_modules(RELAY))
    assert _libraries(loaded) & {"textual", "rich", "mido", "rtmidi", "fluidsynth"} == set()
    assert [m for m in loaded if _under(m, CLIENT)] == []


def test_headless_client_does_not_load_textual() -> None:
    assert "textual" not in _libraries(_loaded_after_import([f"{CLIENT}.headless", f"{CLIENT}.engine"]))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_entry_point_reaches_both_client_and_server() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tui").rglob("*.py"))
        if path.name != "cli.py" and any(_under(name, RELAY) for name in _imports(path))
    ]
    offenders += [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "server").rglob("*.py"))
        if any(_under(name, CLIENT) for name in _imports(path))
    ]
    assert offenders == []


def _sources() -> list[Path]:
    return sorted(
        Path(top) / name
        for folder in SOURCE_FOLDERS
        for top, _, files in os.walk(ROOT / folder)
        for name in files
        if name.endswith(".py") and not name.endswith("_pb2.py")
    )


def _old_dotted_name() -> re.Pattern[str]:
    """`tui.<submodule>` or `server.<submodule>` standing alone in a string (a `-m` argument, a monkeypatch
    target, a logger name); `tests.server.<x>`, `websockets.server` and paths do not match."""
    alternatives = [
        f"{package}\\.(?:{'|'.join(info.name for info in pkgutil.iter_modules([str(ROOT / package)]))})\\b"
        for package in ("tui", "server")
    ]
    return re.compile(rf"(?<![\w./@\\-])(?:{'|'.join(alternatives)})")


def _imported_names(node: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for each absolute module an import statement names."""
    if isinstance(node, ast.Import):
        return [(node.lineno, alias.name) for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [(node.lineno, node.module)]
    return []


def test_nothing_uses_the_old_top_level_names() -> None:
    sources = _sources()
    # the walk reads the real folders, each file once
    assert len([p for p in sources if p.is_relative_to(ROOT / "tui")]) > 20
    assert len({p.resolve() for p in sources}) == len(sources)
    old_name = _old_dotted_name()
    found = []
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = f"{path.relative_to(ROOT)}"
        found += [
            f"{where}:{line} imports {name}"
            for node in ast.walk(tree)
            for line, name in _imported_names(node)
            if name.split(".")[0] in ("tui", "server")
        ]
        found += [
            f"{where}:{node.lineno} names {match.group(0)}… in a string"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            for match in old_name.finditer(node.value)
        ]
    assert found == [], "use pianorhythm.tui / pianorhythm.server:\n" + "\n".join(found)
