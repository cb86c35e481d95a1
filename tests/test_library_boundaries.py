"""Where tui/ and server/ meet websockets and Textual they use the documented API only (docs/STYLE.md).

Private members change without notice, and an override of one keeps running, or silently stops
running, after an upgrade. These checks read the sources (AST, no imports of them) and fail naming the
file, the line and what to use instead. One version-gated path: tui/keys/kitty.py's driver copies Textual
8.2's LinuxDriver input loop (key release); tests/tui/test_keys_kitty.py fails when its gate turns off.

The relay drives websockets' sans-I/O `ServerProtocol` with its own asyncio transport (server/ws.py); the
server checks follow every websockets connection or protocol object the code names (a parameter, variable
or attribute annotated with, or assigned from, such a class) and fail on any member of it that is not in
websockets' reference for that class.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.connection import Connection
from websockets.protocol import Protocol

ROOT = Path(__file__).resolve().parent.parent
TUI = ROOT / "tui"
SERVER = ROOT / "server"
SOURCES = sorted(TUI.rglob("*.py"))
SERVER_SOURCES = sorted(SERVER.rglob("*.py"))
TREES = {"tui": SOURCES, "server": SERVER_SOURCES}

# Members of a websockets connection that are not its documented API, with what to use instead.
WEBSOCKETS_DENIED = {
    "process_event": "read messages with `await ws.recv()` or `async for message in ws`",
    "recv_messages": "read messages with `await ws.recv()` or `async for message in ws`",
    "protocol": "ConnectionClosed.rcvd / .sent, ws.close_code, ws.close_reason, ws.state",
    "transport": "ws.send(), and websockets' write limits",
    "paused": "ws.send() waits while the peer reads slowly (write_limit)",
}
# websockets' reference for the asyncio ServerConnection (docs/reference/asyncio/server.rst) and for the
# sans-I/O ServerProtocol (docs/reference/sansio/server.rst).
ASYNCIO_CONNECTION_API = frozenset(
    {
        "recv", "recv_streaming", "send", "close", "wait_closed", "ping", "pong", "respond", "id",
        "logger", "local_address", "remote_address", "latency", "state", "request", "response",
        "subprotocol", "close_code", "close_reason",
    }
)  # fmt: skip
SANSIO_PROTOCOL_API = frozenset(
    {
        "receive_data", "receive_eof", "accept", "select_subprotocol", "reject", "send_response",
        "send_continuation", "send_text", "send_binary", "send_close", "send_ping", "send_pong", "fail",
        "events_received", "data_to_send", "close_expected", "id", "logger", "state", "handshake_exc",
        "close_code", "close_reason", "close_exc",
    }
)  # fmt: skip
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
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def test_the_checks_see_the_sources():
    assert len(SOURCES) > 20
    using = [p.name for p in SOURCES if _uses(_parse(p), "websockets")]
    assert "session.py" in using  # the check below would pass vacuously if this stopped matching
    assert {"outbox.py", "shell.py", "ws.py"} <= {p.name for p in SERVER_SOURCES}
    tracked = _websockets_objects(_parse(SERVER / "ws.py"))
    assert tracked.get("_protocol") is SANSIO_PROTOCOL_API  # the relay's one websockets protocol object


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("library", ["websockets", "textual"])
def test_no_private_module_is_imported(library: str, tree: str):
    found = [
        f"{_where(path, node)} imports {name}"
        for path in TREES[tree]
        for node, name in _imported_modules(_parse(path))
        if name.split(".")[0] == library and any(part.startswith("_") for part in name.split("."))
    ]
    assert not found, f"private {library} modules imported (use the documented API):\n" + "\n".join(found)


@pytest.mark.parametrize("tree", TREES)
def test_no_private_member_of_a_websockets_connection_is_used(tree: str):
    found = []
    for path in TREES[tree]:
        tree_ = _parse(path)
        uses_websockets = _uses(tree_, "websockets")
        for node in ast.walk(tree_):
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
    assert not found, f"websockets internals used in {tree}/:\n" + "\n".join(found)


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


@pytest.mark.parametrize("tree", TREES)
def test_no_websockets_connection_or_protocol_is_subclassed(tree: str):
    found = []
    for path in TREES[tree]:
        module = _parse(path)
        for node, cls in _base_classes(module, _imported_classes(module, "websockets")):
            if issubclass(cls, (Connection, Protocol)):
                found.append(f"{_where(path, node)} class {node.name}({cls.__name__})")
    assert not found, f"websockets connection classes subclassed in {tree}/:\n" + "\n".join(found)


# -- server/: every member used on a websockets connection or protocol object is documented ---------


def _annotated_class(annotation: ast.expr | None, classes: dict[str, type]) -> type | None:
    """The websockets class an annotation names: `C`, `C | None`, `"C | None"`, `Optional[C]`."""
    if annotation is None:
        return None
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return _annotated_class(ast.parse(annotation.value, mode="eval").body, classes)
    if isinstance(annotation, ast.Name):
        return classes.get(annotation.id)
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _annotated_class(annotation.left, classes) or _annotated_class(annotation.right, classes)
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        if annotation.value.id == "Optional":
            return _annotated_class(annotation.slice, classes)
    return None


def _api(cls: type | None) -> frozenset[str] | None:
    """The documented members of a websockets connection or protocol class; None for any other class."""
    if cls is None:
        return None
    if issubclass(cls, Connection):
        return ASYNCIO_CONNECTION_API
    if issubclass(cls, Protocol):
        return SANSIO_PROTOCOL_API
    return None


def _key(node: ast.expr) -> str | None:
    """How code names an object: `conn` for `conn`, `conn` for `box.conn` and `self.conn`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _websockets_objects(tree: ast.Module) -> dict[str, frozenset[str]]:
    """Names (variables, parameters, attributes) that hold a websockets connection or protocol object in
    this module, each with the documented members of its class."""
    classes = _imported_classes(tree, "websockets")
    found: dict[str, frozenset[str]] = {}
    for node in ast.walk(tree):
        target: ast.expr | None = None
        api = None
        if isinstance(node, ast.arg):
            api = _api(_annotated_class(node.annotation, classes))
            if api is not None:
                found[node.arg] = api
            continue
        if isinstance(node, ast.AnnAssign):
            target, api = node.target, _api(_annotated_class(node.annotation, classes))
            if api is None and isinstance(node.value, ast.Call):
                api = _api(_annotated_class(node.value.func, classes))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1:
            target, api = node.targets[0], _api(_annotated_class(node.value.func, classes))
        key = _key(target) if target is not None else None
        if key is not None and api is not None:
            found[key] = api
    return found


def _undocumented_uses(tree: ast.Module) -> Iterator[tuple[ast.Attribute, str]]:
    objects = _websockets_objects(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            key = _key(node.value)
            api = objects.get(key) if key is not None else None
            if api is not None and node.attr not in api:
                yield node, f".{node.attr} of `{key}` is not in websockets' reference for its class"


def test_server_uses_only_documented_members_of_websockets_connections_and_protocols():
    found = [
        f"{_where(path, node)} {why}"
        for path in SERVER_SOURCES
        for node, why in _undocumented_uses(_parse(path))
    ]
    assert not found, (
        "server/ reaches into websockets' undocumented members (they change without notice; server/ws.py"
        " owns the transport and drives the documented sans-I/O ServerProtocol):\n" + "\n".join(found)
    )


# The outbox as it was before server/ws.py (lines kept verbatim): the check must name every one of them.
OUTBOX_BEFORE_WS = """
from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

class Outbox:
    def __init__(self, session_id: int, conn: ServerConnection) -> None:
        self.conn = conn

class Mailer:
    def _write(self, box, wire, now):
        conn = box.conn
        if conn.protocol.state is not State.OPEN:
            return
        if box.draining or conn.paused:
            return
        conn.transport.write(data)

    async def _probe(self, box):
        pong = await box.conn.ping()

    async def _wait_drain(self, box):
        await box.conn.drain()

def _buffered(box):
    transport = box.conn.transport
"""


def test_the_server_check_names_what_the_outbox_used_to_read():
    found = sorted(node.attr for node, _ in _undocumented_uses(ast.parse(OUTBOX_BEFORE_WS)))
    assert found == ["drain", "paused", "protocol", "transport", "transport"]
    sansio = "from websockets.server import ServerProtocol\nclass W:\n    def __init__(self):\n"
    sansio += "        self._protocol = ServerProtocol()\n        self._protocol.parser.send(None)\n"
    assert [node.attr for node, _ in _undocumented_uses(ast.parse(sansio))] == ["parser"]


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
