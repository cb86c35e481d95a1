"""Shared fixtures. Real-service fixtures (relay server, jackd, redis) live in tests/fixtures/ as plugins."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins: list[str] = [
    "tests.fixtures.jack",
    "tests.fixtures.proxy",
    "tests.fixtures.pulse",
    "tests.fixtures.redis",
    "tests.fixtures.server",
    "tests.fixtures.tls",
]


@pytest.fixture
def fresh_logging() -> Iterator[None]:
    """Put the root logger back as pytest set it up, closing the handlers a test added."""
    root, ws = logging.getLogger(), logging.getLogger("websockets")
    handlers, level, ws_level = root.handlers[:], root.level, ws.level
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        ws.setLevel(ws_level)
        logging.captureWarnings(False)
