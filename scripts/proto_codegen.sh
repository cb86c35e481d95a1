#!/usr/bin/env bash
# Regenerates the committed protobuf modules from proto/pianorhythm.proto.
# Usage: scripts/proto_codegen.sh [OUT_DIR]   (default: pianorhythm/wire)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-pianorhythm/wire}"
python="${PYTHON:-.venv/bin/python}"
# protoc finds the mypy plugin on PATH: the one installed beside that python.
export PATH="$(cd "$(dirname "$python")" && pwd):$PATH"
"$python" -m grpc_tools.protoc -Iproto --python_out="$out" --mypy_out="$out" proto/pianorhythm.proto
