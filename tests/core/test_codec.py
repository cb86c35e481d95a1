"""The frame codec: round trips for every envelope type, compression rules, and every rejection."""

from __future__ import annotations

import random

import lz4.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pianorhythm.wire import pb
from pianorhythm.wire.codec import (
    DEFAULT_MAX_PAYLOAD,
    FLAG_LZ4,
    CodecConfig,
    ProtocolError,
    batch_payload,
    decode_client,
    decode_server,
    encode,
    encode_batch,
    encode_serialized,
)
from tests.core.strategies import envelope_with

CLIENT_ACTIONS = [
    f.name for f in pb.ClientMessage.DESCRIPTOR.oneofs_by_name["action"].fields if f.name != "batch"
]
SERVER_EVENTS = [
    f.name for f in pb.ServerMessage.DESCRIPTOR.oneofs_by_name["event"].fields if f.name != "batch"
]
ALWAYS_COMPRESS = CodecConfig(compress_threshold=0)


def note_batch(events: int) -> pb.ClientMessage:
    return pb.ClientMessage(
        note_batch=pb.NoteBatch(
            base_time_us=1_764_000_000_000_000,
            events=[
                pb.NoteEvent(offset_us=i * 1000, note=pb.Note(key=60 + i, velocity=90)) for i in range(events)
            ],
        )
    )


@pytest.mark.parametrize("config", [CodecConfig(), ALWAYS_COMPRESS], ids=["plain", "compressed"])
@pytest.mark.parametrize("action", CLIENT_ACTIONS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_client_action_round_trips(action: str, config: CodecConfig, data: st.DataObject) -> None:
    message = data.draw(envelope_with(pb.ClientMessage, action))
    assert decode_client(encode(message, config), config) == [message]


@pytest.mark.parametrize("config", [CodecConfig(), ALWAYS_COMPRESS], ids=["plain", "compressed"])
@pytest.mark.parametrize("event", SERVER_EVENTS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_server_event_round_trips(event: str, config: CodecConfig, data: st.DataObject) -> None:
    message = data.draw(envelope_with(pb.ServerMessage, event))
    assert decode_server(encode(message, config), config) == [message]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(SERVER_EVENTS), min_size=1, max_size=8), st.data())
def test_server_batches_round_trip_in_order(events: list[str], data: st.DataObject) -> None:
    messages = [data.draw(envelope_with(pb.ServerMessage, e)) for e in events]
    assert decode_server(encode_batch(messages)) == messages
    assert decode_server(encode_batch(messages, ALWAYS_COMPRESS)) == messages


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(CLIENT_ACTIONS), min_size=1, max_size=8), st.data())
def test_client_batches_round_trip_in_order(actions: list[str], data: st.DataObject) -> None:
    messages = [data.draw(envelope_with(pb.ClientMessage, a)) for a in actions]
    assert decode_client(encode_batch(messages)) == messages


def test_batch_built_by_concatenation_is_real_protobuf() -> None:
    first = pb.ServerMessage(typing=pb.Typing(user_id=7, typing=True))
    second = pb.ServerMessage(ref=3, pong=pb.Pong(client_send_us=1, server_receive_us=2, server_send_us=3))
    parsed = pb.ServerMessage.FromString(
        batch_payload([first.SerializeToString(), second.SerializeToString()])
    )
    assert parsed.WhichOneof("event") == "batch"
    assert list(parsed.batch.messages) == [first, second]


def test_a_single_serialized_envelope_is_sent_unbatched() -> None:
    message = pb.ServerMessage(typing=pb.Typing(user_id=7, typing=True))
    assert encode_serialized([message.SerializeToString()]) == encode(message)


def test_small_frames_are_not_compressed_and_large_ones_are() -> None:
    small = encode(pb.ClientMessage(chat_send=pb.ChatSend(content="hello")))
    assert small[0] == 0
    large = encode(pb.ClientMessage(chat_send=pb.ChatSend(content="la " * 400)))
    assert large[0] == FLAG_LZ4
    assert len(large) < 400


def test_compression_is_skipped_when_it_does_not_save_bytes() -> None:
    rng = random.Random(1)
    noise = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(600))
    message = pb.ClientMessage(chat_send=pb.ChatSend(content=noise))
    raw = message.SerializeToString()
    assert len(lz4.frame.compress(raw, store_size=True)) >= len(raw)
    assert encode(message, ALWAYS_COMPRESS) == b"\x00" + raw


def test_a_1_event_note_batch_is_small_on_the_wire() -> None:
    assert len(encode(note_batch(1))) <= 24


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", pb.ERROR_CODE_EMPTY_FRAME),
        (b"\x02" + note_batch(1).SerializeToString(), pb.ERROR_CODE_UNKNOWN_FLAGS),
        (b"\x80", pb.ERROR_CODE_UNKNOWN_FLAGS),
        (b"\x01not lz4 at all", pb.ERROR_CODE_CORRUPT_COMPRESSION),
        (b"\x01" + lz4.frame.compress(b"x" * 2000)[:-6], pb.ERROR_CODE_CORRUPT_COMPRESSION),
        (b"\x01" + lz4.frame.compress(b"\x5a\x00") + b"trailing", pb.ERROR_CODE_CORRUPT_COMPRESSION),
        (b"\x00\xff\xff\xff", pb.ERROR_CODE_BAD_PROTOBUF),
        (b"\x00", pb.ERROR_CODE_NO_ACTION),
        (b"\x00" + pb.ClientMessage(ref=5).SerializeToString(), pb.ERROR_CODE_NO_ACTION),
    ],
    ids=[
        "empty",
        "flag-bit-1",
        "flag-bit-7",
        "not-lz4",
        "truncated-lz4",
        "trailing-bytes",
        "bad-protobuf",
        "empty-envelope",
        "ref-only",
    ],
)
def test_bad_frames_raise_protocol_error_with_code(frame: bytes, code: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_client(frame)
    assert caught.value.code == code


def test_nested_and_empty_batch_members_are_rejected() -> None:
    inner = pb.ClientMessage(batch=pb.ClientBatch(messages=[pb.ClientMessage(ping=pb.Ping())]))
    nested = pb.ClientMessage(batch=pb.ClientBatch(messages=[inner]))
    with pytest.raises(ProtocolError) as caught:
        decode_client(encode(nested))
    assert caught.value.code == pb.ERROR_CODE_NESTED_BATCH
    hollow = pb.ClientMessage(batch=pb.ClientBatch(messages=[pb.ClientMessage(ref=1)]))
    with pytest.raises(ProtocolError) as caught:
        decode_client(encode(hollow))
    assert caught.value.code == pb.ERROR_CODE_NO_ACTION


def test_uncompressed_payload_over_the_cap_is_rejected() -> None:
    message = pb.ClientMessage(chat_send=pb.ChatSend(content="a" * DEFAULT_MAX_PAYLOAD))
    frame = b"\x00" + message.SerializeToString()
    with pytest.raises(ProtocolError) as caught:
        decode_client(frame)
    assert caught.value.code == pb.ERROR_CODE_FRAME_TOO_LARGE
    with pytest.raises(ProtocolError):
        encode(message)


def test_payload_exactly_at_the_cap_is_accepted() -> None:
    config = CodecConfig(max_payload=1000)
    content_len = (
        1000 - len(pb.ClientMessage(chat_send=pb.ChatSend(content="a" * 990)).SerializeToString()) + 990
    )
    message = pb.ClientMessage(chat_send=pb.ChatSend(content="a" * content_len))
    assert len(message.SerializeToString()) == 1000
    for cfg in (config, CodecConfig(max_payload=1000, compress_threshold=0)):
        assert decode_client(encode(message, cfg), cfg) == [message]
    over = pb.ClientMessage(chat_send=pb.ChatSend(content="a" * (content_len + 1)))
    with pytest.raises(ProtocolError) as caught:
        decode_client(b"\x01" + lz4.frame.compress(over.SerializeToString()), config)
    assert caught.value.code == pb.ERROR_CODE_FRAME_TOO_LARGE
