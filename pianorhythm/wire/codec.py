"""Frames <-> envelopes. Pure: bytes in, messages out, no I/O.

A frame is one flag byte and a payload. Flag bit 0 means the payload is an LZ4 frame; the other bits are
reserved and must be 0. The (decompressed) payload is one protobuf envelope; a batch envelope carries
several envelopes in one frame, so a sender can coalesce whatever is ready without waiting on a timer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import lz4.frame
from google.protobuf.message import DecodeError

from pianorhythm.wire import pianorhythm_pb2 as pb

FLAG_LZ4: Final = 0x01
KNOWN_FLAGS: Final = FLAG_LZ4
DEFAULT_COMPRESS_THRESHOLD: Final = 512
DEFAULT_MAX_PAYLOAD: Final = 64 * 1024

_UNCOMPRESSED: Final = b"\x00"
_COMPRESSED: Final = bytes([FLAG_LZ4])

Envelope = TypeVar("Envelope", pb.ClientMessage, pb.ServerMessage)


class ProtocolError(ValueError):
    """A frame that cannot be decoded. `code` is the wire error code to answer with."""

    def __init__(self, code: pb.ErrorCode.ValueType, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CodecConfig:
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    max_payload: int = DEFAULT_MAX_PAYLOAD


DEFAULT_CONFIG: Final = CodecConfig()


def frame_bytes(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """The largest WebSocket message a peer may send under a payload cap: the cap plus the flag byte.

    Both ends give this to websockets' `max_size`, so a payload exactly at the cap goes through; an LZ4
    payload is only sent when smaller than the protobuf bytes, so it never needs more.
    """
    return max_payload + 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_LENGTH_DELIMITED: Final = 2
# The `batch` member has field number 99 in both envelopes; its items are field 1 of the batch message.
_BATCH_TAG: Final = _varint(pb.ServerMessage.BATCH_FIELD_NUMBER << 3 | _LENGTH_DELIMITED)
_BATCH_ITEM_TAG: Final = _varint(pb.ServerBatch.MESSAGES_FIELD_NUMBER << 3 | _LENGTH_DELIMITED)


def frame_payload(payload: bytes, config: CodecConfig = DEFAULT_CONFIG) -> bytes:
    """Wrap protobuf bytes in a frame, compressing only above the threshold and only when it saves bytes."""
    if len(payload) > config.max_payload:
        raise ProtocolError(
            pb.ERROR_CODE_FRAME_TOO_LARGE, f"payload of {len(payload)} bytes exceeds {config.max_payload}"
        )
    if len(payload) >= config.compress_threshold:
        packed: bytes = lz4.frame.compress(payload, store_size=True)
        if len(packed) < len(payload):
            return _COMPRESSED + packed
    return _UNCOMPRESSED + payload


def encode(message: pb.ClientMessage | pb.ServerMessage, config: CodecConfig = DEFAULT_CONFIG) -> bytes:
    """One envelope -> one frame."""
    return frame_payload(message.SerializeToString(), config)


def batch_payload(encoded: Sequence[bytes]) -> bytes:
    """Protobuf bytes of a batch envelope holding already-serialized envelopes, without re-encoding them.

    An embedded message field is a length-delimited field, so the batch is built by concatenation; the
    result parses as a `ServerMessage`/`ClientMessage` whose `batch.messages` are the given envelopes.
    """
    inner = b"".join(_BATCH_ITEM_TAG + _varint(len(item)) + item for item in encoded)
    return _BATCH_TAG + _varint(len(inner)) + inner


def encode_serialized(encoded: Sequence[bytes], config: CodecConfig = DEFAULT_CONFIG) -> bytes:
    """A frame for one or more already-serialized envelopes: the envelope itself, or a batch of them."""
    if len(encoded) == 1:
        return frame_payload(encoded[0], config)
    return frame_payload(batch_payload(encoded), config)


def encode_batch(
    messages: Iterable[pb.ClientMessage | pb.ServerMessage], config: CodecConfig = DEFAULT_CONFIG
) -> bytes:
    """Several envelopes -> one frame."""
    return encode_serialized([m.SerializeToString() for m in messages], config)


def unframe(frame: bytes, config: CodecConfig = DEFAULT_CONFIG) -> bytes:
    """A frame -> its protobuf bytes, checked and decompressed within the size cap."""
    if not frame:
        raise ProtocolError(pb.ERROR_CODE_EMPTY_FRAME, "empty frame")
    flags = frame[0]
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError(pb.ERROR_CODE_UNKNOWN_FLAGS, f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:02x}")
    payload = frame[1:]
    if not flags & FLAG_LZ4:
        if len(payload) > config.max_payload:
            raise ProtocolError(
                pb.ERROR_CODE_FRAME_TOO_LARGE, f"payload of {len(payload)} bytes exceeds {config.max_payload}"
            )
        return bytes(payload)
    return _decompress(bytes(payload), config.max_payload)


_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
_LZ4_BLOCK_SIZES: Final = {4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024}
_LZ4_CONTENT_SIZE_FLAG: Final = 0x08


def _check_lz4_header(payload: bytes, cap: int) -> None:
    """Reject before decompressing what would make the decoder allocate past the cap.

    The decoder buffers a whole block, so a frame declaring blocks larger than the cap (or larger than
    64 KiB, the size every encoder here uses) is refused, as is a declared content size over the cap.
    """
    if len(payload) < 7 or payload[:4] != _LZ4_MAGIC:
        raise ProtocolError(pb.ERROR_CODE_CORRUPT_COMPRESSION, "payload is not an lz4 frame")
    flags, block_descriptor = payload[4], payload[5]
    block_size = _LZ4_BLOCK_SIZES.get(block_descriptor >> 4 & 0x07)
    if block_size is None:
        raise ProtocolError(pb.ERROR_CODE_CORRUPT_COMPRESSION, "lz4 frame has an invalid block size")
    if block_size > max(cap, _LZ4_BLOCK_SIZES[4]):
        raise ProtocolError(pb.ERROR_CODE_FRAME_TOO_LARGE, f"lz4 blocks of {block_size} bytes exceed the cap")
    if flags & _LZ4_CONTENT_SIZE_FLAG and len(payload) >= 14:
        declared = int.from_bytes(payload[6:14], "little")
        if declared > cap:
            raise ProtocolError(
                pb.ERROR_CODE_FRAME_TOO_LARGE, f"declared size {declared} exceeds {cap} bytes"
            )


def _decompress(payload: bytes, cap: int) -> bytes:
    _check_lz4_header(payload, cap)
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        # Asking for at most cap + 1 bytes bounds the allocation whatever the frame header claims.
        out = decompressor.decompress(payload, max_length=cap + 1)
    except RuntimeError as exc:
        raise ProtocolError(pb.ERROR_CODE_CORRUPT_COMPRESSION, f"corrupt lz4 payload: {exc}") from None
    if len(out) > cap or (not decompressor.eof and not decompressor.needs_input):
        raise ProtocolError(pb.ERROR_CODE_FRAME_TOO_LARGE, f"decompressed payload exceeds {cap} bytes")
    if not decompressor.eof:
        raise ProtocolError(pb.ERROR_CODE_CORRUPT_COMPRESSION, "truncated lz4 payload")
    if decompressor.unused_data:
        raise ProtocolError(pb.ERROR_CODE_CORRUPT_COMPRESSION, "trailing bytes after the lz4 payload")
    return bytes(out)


def _parse(kind: type[Envelope], payload: bytes) -> Envelope:
    message = kind()
    try:
        message.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ProtocolError(pb.ERROR_CODE_BAD_PROTOBUF, f"not a valid {kind.__name__}: {exc}") from None
    return message


def _which(envelope: pb.ClientMessage | pb.ServerMessage) -> str | None:
    if isinstance(envelope, pb.ClientMessage):
        return envelope.WhichOneof("action")
    return envelope.WhichOneof("event")


def _envelopes(kind: type[Envelope], payload: bytes) -> list[Envelope]:
    envelope = _parse(kind, payload)
    which = _which(envelope)
    if which is None:
        raise ProtocolError(pb.ERROR_CODE_NO_ACTION, f"{kind.__name__} has nothing set")
    if which != "batch":
        return [envelope]
    items: list[Envelope] = list(envelope.batch.messages)
    for item in items:
        inner = _which(item)
        if inner is None:
            raise ProtocolError(pb.ERROR_CODE_NO_ACTION, f"a batched {kind.__name__} has nothing set")
        if inner == "batch":
            raise ProtocolError(pb.ERROR_CODE_NESTED_BATCH, "a batch may not contain a batch")
    return items


def decode_client(frame: bytes, config: CodecConfig = DEFAULT_CONFIG) -> list[pb.ClientMessage]:
    """A client frame -> its ClientMessages (one, or the contents of a batch). Raises ProtocolError."""
    return _envelopes(pb.ClientMessage, unframe(frame, config))


def decode_server(frame: bytes, config: CodecConfig = DEFAULT_CONFIG) -> list[pb.ServerMessage]:
    """A server frame -> its ServerMessages (one, or the contents of a batch). Raises ProtocolError."""
    return _envelopes(pb.ServerMessage, unframe(frame, config))
