"""The relay core is sans-I/O: importing it loads no event loop, socket, database or websockets code."""

from __future__ import annotations

import subprocess
import sys


def test_core_imports_no_io_modules() -> None:
    code = (
        "import sys, pianorhythm.server.core; "
        "bad = {'asyncio', 'websockets', 'sqlite3', 'socket', 'textual', 'tui'} & set(sys.modules); "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
