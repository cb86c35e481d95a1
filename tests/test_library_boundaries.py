"""Where tui/ meets websockets and Textual it uses their documented API only (docs/STYLE.md).

Private members change without notice, and an override of one keeps running, or silently stops
running, after an upgrade. These checks read tui/'s source (AST, no imports of it) and fail naming the
file, the line and what to use instead. There is no version-gated fast path today; one added later
would come with its own test that fails when the fast path turns off, and an entry here.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.connection import Connection
from websockets.protocol import Protocol

TUI = Path(__file__).resolve().parent.parent / "tui"
SOURCES = sorted(TUI.rglob("*.py"))

# Members of a websockets connection that are not its documented API, with what to use instead.
WEBSOCKETS_DENIED = {
    "process_event": "read messages with `await ws.recv()` or `async for message in ws`",
    "recv_messages": "read messages with `await ws.recv()` or `async for message in ws`",
    "protocol": "ConnectionClosed.rcvd / .sent, ws.close_code, ws.close_reason, ws.state",
    "transport": "ws.send(), and websockets' write limits",
    "paused": "ws.send() waits while the peer reads slowly (write_limit)",
}
# Textual: the compositor is private (textual._compositor); a screen keeps the stock one.
TEXTUAL_DENIED = {
    "_compositor": "Textual's compositor is private; use refresh()/Widget API",
    "_get_renders": "Textual's compositor is private",
}


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported_modules(tree: ast.Module) -> Iterator[tuple[ast.stmt, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name


def _uses(tree: ast.Module, library: str) -> bool:
    return any(name.split(".")[0] == library for _, name in _imported_modules(tree))


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(TUI.parent)}:{getattr(node, 'lineno', '?')}"


def test_the_checks_see_the_sources():
    assert len(SOURCES) > 20
    using = [p.name for p in SOURCES if _uses(_parse(p), "websockets")]
    assert "session.py" in using  # the check below would pass vacuously if this stopped matching


@pytest.mark.parametrize("library", ["websockets", "textual"])
def test_no_private_module_is_imported(library: str):
    found = [
        f"{_where(path, node)} imports {name}"
        for path in SOURCES
        for node, name in _imported_modules(_parse(path))
        if name.split(".")[0] == library and any(part.startswith("_") for part in name.split("."))
    ]
    assert not found, f"private {library} modules imported (use the documented API):\n" + "\n".join(found)


def test_no_private_member_of_a_websockets_connection_is_used():
    found = []
    for path in SOURCES:
        tree = _parse(path)
        uses_websockets = _uses(tree, "websockets")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in WEBSOCKETS_DENIED:
                found.append(f"{_where(path, node)} .{node.attr}: {WEBSOCKETS_DENIED[node.attr]}")
            elif (
                uses_websockets
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{_where(path, node)} .{node.attr}: a private member")
    assert not found, "websockets internals used in tui/:\n" + "\n".join(found)


def _imported_classes(tree: ast.Module, library: str) -> dict[str, type]:
    classes: dict[str, type] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == library:
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if isinstance(value, type):
                    classes[alias.asname or alias.name] = value
    return classes


def _base_classes(tree: ast.Module, names: dict[str, type]) -> Iterator[tuple[ast.ClassDef, type]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Name) and base.id in names:
                    yield node, names[base.id]


def test_no_websockets_connection_or_protocol_is_subclassed():
    found = []
    for path in SOURCES:
        tree = _parse(path)
        for node, cls in _base_classes(tree, _imported_classes(tree, "websockets")):
            if issubclass(cls, (Connection, Protocol)):
                found.append(f"{_where(path, node)} class {node.name}({cls.__name__})")
    assert not found, "websockets connection classes subclassed in tui/:\n" + "\n".join(found)


def test_no_textual_compositor_is_subclassed_or_replaced():
    found = []
    for path in SOURCES:
        tree = _parse(path)
        for cls_node, cls in _base_classes(tree, _imported_classes(tree, "textual")):
            if cls.__name__ == "Compositor":
                found.append(f"{_where(path, cls_node)} class {cls_node.name}(Compositor)")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in TEXTUAL_DENIED:
                found.append(f"{_where(path, node)} .{node.attr}: {TEXTUAL_DENIED[node.attr]}")
    no_fast_path = "Textual's private compositor used in tui/ (no version-gated fast path exists):\n"
    assert not found, no_fast_path + "\n".join(found)
