"""The committed protobuf modules match what the pinned generator makes from proto/pianorhythm.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("pianorhythm_pb2.py", "pianorhythm_pb2.pyi")


def test_committed_protobuf_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "proto_codegen.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        capture_output=True,
    )
    stale = [
        name
        for name in GENERATED
        if (tmp_path / name).read_text() != (ROOT / "pianorhythm" / "wire" / name).read_text()
    ]
    assert stale == [], f"{', '.join(stale)} are stale: run `make proto` and commit the result"
