"""Hypothesis strategies that build any protobuf message of the schema from its descriptor."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from pianorhythm.wire import pb

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return st.integers(low, high)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32, allow_nan=False)
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if field.type == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=40)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.sampled_from([v.number for v in field.enum_type.values])
    raise TypeError(f"no strategy for field type {field.type}")


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_of(field.message_type, depth + 1)
    return _scalar(field)


def _in_real_oneof(field: FieldDescriptor) -> bool:
    oneof = field.containing_oneof
    # proto3 `optional` fields sit in a synthetic oneof named after them; those are plain fields here.
    return oneof is not None and oneof.name != f"_{field.name}"


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(value)
        getattr(message, field.name).SetInParent()
    else:
        setattr(message, field.name, value)


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message: Message = GetMessageClass(descriptor)()
    deep = depth > 3
    for field in descriptor.fields:
        if _in_real_oneof(field):
            continue
        if field.is_repeated:
            container = getattr(message, field.name)
            for _ in range(0 if deep else draw(st.integers(0, 3))):
                value = draw(_field_value(field, depth))
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    container.add().CopyFrom(value)
                else:
                    container.append(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if not deep and draw(st.booleans()):
                _set(message, field, draw(_field_value(field, depth)))
        elif not field.has_presence or draw(st.booleans()):
            _set(message, field, draw(_scalar(field)))
    for oneof in descriptor.oneofs:
        members = [f for f in oneof.fields if _in_real_oneof(f) and f.name != "batch"]
        if members and not deep:
            field = draw(st.sampled_from(members))
            _set(message, field, draw(_field_value(field, depth)))
    return message


def message_of(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of `descriptor`; oneofs never pick `batch`, so envelopes are never nested batches."""
    return _message(descriptor, depth)


def envelope_with(
    kind: type[pb.ClientMessage] | type[pb.ServerMessage], member: str
) -> st.SearchStrategy[Any]:
    """An envelope whose oneof holds `member`, with random contents."""
    descriptor = kind.DESCRIPTOR
    field = descriptor.fields_by_name[member]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        envelope = kind()
        envelope.ref = draw(st.integers(0, 2**32 - 1))
        assert field.message_type is not None
        _set(envelope, field, draw(message_of(field.message_type, 1)))
        return envelope

    return build()
