"""Hostile input: random and mutated frames only ever raise ProtocolError, and bombs stay within the cap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tracemalloc

import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pianorhythm.wire import pb
from pianorhythm.wire.codec import (
    DEFAULT_MAX_PAYLOAD,
    ProtocolError,
    decode_client,
    decode_server,
    encode_batch,
)

SEEDS = [
    encode_batch(
        [
            pb.ClientMessage(
                note_batch=pb.NoteBatch(
                    base_time_us=123,
                    events=[pb.NoteEvent(offset_us=i, note=pb.Note(key=i, velocity=64)) for i in range(40)],
                )
            )
        ]
        * 3
    ),
    encode_batch([pb.ClientMessage(hello=pb.Hello(name="ada", color="#ff8800"))]),
    encode_batch(
        [
            pb.ServerMessage(
                room_state=pb.RoomState(name="r", users=[pb.User(id=i, name="u" * 30) for i in range(30)])
            )
        ]
    ),
]


def _decode_both(frame: bytes) -> None:
    for decode in (decode_client, decode_server):
        try:
            decode(frame)
        except ProtocolError as exc:
            assert exc.code != pb.ERROR_CODE_UNSPECIFIED


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_protocol_error(frame: bytes) -> None:
    _decode_both(frame)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 10_000),
)
def test_mutated_frames_only_raise_protocol_error(
    seed: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    frame = bytearray(seed)
    for position, value in flips:
        frame[position % len(frame)] = value
    _decode_both(bytes(frame))
    _decode_both(bytes(frame[: cut % (len(frame) + 1)]))


def _assert_rejected_within_the_cap(bomb: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as caught:
            decode_client(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    assert peak < 4 * DEFAULT_MAX_PAYLOAD + len(bomb)  # the frame copy plus output bounded by the cap


@pytest.mark.parametrize("claimed", [DEFAULT_MAX_PAYLOAD + 1, 8 * 1024 * 1024])
def test_decompression_bomb_is_rejected_without_allocating_past_the_cap(claimed: int) -> None:
    bomb = b"\x01" + lz4.frame.compress(b"\x00" * claimed, store_size=True)
    _assert_rejected_within_the_cap(bomb)


def test_gigabyte_bomb_does_not_grow_the_process() -> None:
    script = textwrap.dedent(
        """
        import resource, lz4.frame
        from pianorhythm.wire.codec import ProtocolError, decode_client
        chunk = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX4MB)
        parts = [chunk.begin(source_size=1 << 30)]
        block = b"\\0" * (1 << 22)
        for _ in range(256):
            parts.append(chunk.compress(block))
        parts.append(chunk.flush())
        bomb = b"\\x01" + b"".join(parts)
        del block
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(20):
            try:
                decode_client(bomb)
            except ProtocolError as exc:
                code = exc.code
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(code, after - before)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) == pb.ERROR_CODE_FRAME_TOO_LARGE
    assert int(out[1]) < 1024  # KiB of peak RSS growth while decoding a 1 GiB bomb twenty times


def test_bomb_without_declared_size_in_64k_blocks_stops_at_the_cap() -> None:
    compressor = lz4.frame.LZ4FrameCompressor(block_size=lz4.frame.BLOCKSIZE_MAX64KB, content_checksum=False)
    bomb = (
        b"\x01" + compressor.begin() + compressor.compress(b"\x00" * (32 * 1024 * 1024)) + compressor.flush()
    )
    _assert_rejected_within_the_cap(bomb)
