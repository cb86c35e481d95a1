"""Redis is met in one place: only server/cluster/ imports redis (the relay core stays free of I/O, and the
shell will reach Redis through the cluster package's API)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports_redis(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "redis" for a in node.names):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "redis"
        ):
            return True
    return False


def test_only_the_cluster_package_imports_redis() -> None:
    sources = sorted((ROOT / "server").rglob("*.py")) + sorted((ROOT / "pianorhythm").glob("*.py"))
    users = [str(p.relative_to(ROOT)) for p in sources if _imports_redis(p)]
    assert users and all(u.startswith("server/cluster/") for u in users), users


def test_a_node_on_its_own_never_loads_redis() -> None:
    """The single-node server (and the TUI's embedded one) import no cluster module: redis costs ~0.1 s."""
    code = (
        "import sys, pianorhythm.server.main, pianorhythm.server.shell;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis' or '.cluster' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
