"""The wire: generated protobuf messages and the frame codec."""

from pianorhythm.wire import pianorhythm_pb2 as pb
from pianorhythm.wire.codec import (
    CodecConfig,
    ProtocolError,
    decode_client,
    decode_server,
    encode,
    encode_batch,
    encode_serialized,
)

__all__ = [
    "CodecConfig",
    "ProtocolError",
    "decode_client",
    "decode_server",
    "encode",
    "encode_batch",
    "encode_serialized",
    "pb",
]
