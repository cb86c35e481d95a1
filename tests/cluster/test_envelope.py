"""The room-channel envelope: a fixed binary header in front of the payload bytes (no Redis needed)."""

from __future__ import annotations

import pytest

from pianorhythm.server.cluster.envelope import (
    DATA,
    EVENT,
    HEADER_BYTES,
    BadEnvelope,
    Envelope,
    node_id_bytes,
    pack,
    unpack,
)


def test_what_is_packed_unpacks_the_same() -> None:
    payload = bytes(range(256)) * 4
    data = pack(node_id_bytes("nöde-a"), 2**64 - 1, payload, EVENT)
    assert len(data) == HEADER_BYTES + len("nöde-a".encode()) + len(payload)
    assert unpack(data) == Envelope("nöde-a", 2**64 - 1, payload, EVENT)
    assert unpack(pack(b"b", 0, b"")) == Envelope("b", 0, b"", DATA)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x01\x00\x01", "shorter than the 11-byte header"),
        (b"\x02\x00\x01" + bytes(8) + b"a", "envelope version 2, this node speaks 1"),
        (b"\x01\x07\x01" + bytes(8) + b"a", "unknown envelope kind 7"),
        (b"\x01\x00\x05" + bytes(8) + b"ab", "runs past the end"),
        (b"\x01\x00\x02" + bytes(8) + b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bytes_that_are_not_an_envelope_are_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(BadEnvelope, match=why):
        unpack(data)


@pytest.mark.parametrize("node", ["", "x" * 256])
def test_a_node_id_that_does_not_fit_the_header_is_refused(node: str) -> None:
    with pytest.raises(ValueError, match="A node id must be 1-255 UTF-8 bytes"):
        node_id_bytes(node)
