"""The layers of STYLE.md hold: the core and the server never load UI, MIDI, synth or network code they
must not, and only the command-line entry point reaches both the client and the server."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}.")
        if not info.name.endswith("_pb2")
    ) + [package]


def _loaded_after_import(modules: list[str]) -> set[str]:
    script = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    script += "print('\\n'.join(sorted({name.split('.')[0] for name in sys.modules})))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(result.stdout.split())


def test_core_loads_no_io_ui_or_device_libraries() -> None:
    loaded = _loaded_after_import(_modules("pianorhythm"))
    forbidden = {
        "textual",
        "rich",
        "websockets",
        "mido",
        "rtmidi",
        "fluidsynth",
        "sqlite3",
        "redis",
        "asyncio",
        "server",
        "tui",
    }
    assert loaded & forbidden == set()


def test_the_client_core_is_part_of_the_checked_core() -> None:
    """The client core (handle/tick/local_input, no I/O) is walked by the test above, module by module."""
    client = {name for name in _modules("pianorhythm") if name.startswith("pianorhythm.client")}
    expected = {"core", "effects", "model", "pages", "requests", "session"}
    assert {"pianorhythm.client"} | {f"pianorhythm.client.{name}" for name in expected} <= client


def test_server_loads_no_client_libraries() -> None:
    loaded = _loaded_after_import(_modules("server"))
    assert loaded & {"textual", "rich", "mido", "rtmidi", "fluidsynth", "tui"} == set()


def test_headless_client_does_not_load_textual() -> None:
    assert "textual" not in _loaded_after_import(["tui.headless", "tui.engine"])


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_entry_point_reaches_both_client_and_server() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tui").rglob("*.py"))
        if path.name != "cli.py" and "server" in _imports(path)
    ]
    offenders += [
        str(p.relative_to(ROOT)) for p in sorted((ROOT / "server").rglob("*.py")) if "tui" in _imports(p)
    ]
    assert offenders == []
