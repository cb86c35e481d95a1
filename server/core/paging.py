"""Paging by bytes: what can grow without bound (a room's members and chat, the room list, history) is cut
into ServerMessages that each serialize to at most a byte budget (Limits.page_bytes), so every message
fits the frame cap by construction. Pure functions over protobuf messages.

The cost of an item is what it adds to its parent: a one-byte tag (every paged field has a number below
16), its length as a varint, and its bytes. A page's envelope is measured empty; filling it can lengthen
the varints holding its own length by at most ENVELOPE_GROWTH bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pianorhythm.wire import pianorhythm_pb2 as pb

ENVELOPE_GROWTH: Final = 2  # a length varint grows from 1 byte to at most 3 while under 2 MiB


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def item_cost(size: int) -> int:
    """Bytes a length-delimited item of `size` bytes adds to its parent message."""
    return 1 + _varint_len(size) + size


def room_left(envelope: pb.ServerMessage, budget: int) -> int:
    """Bytes of items that still fit in `envelope` (as built so far, items not yet added) under `budget`."""
    return budget - envelope.ByteSize() - ENVELOPE_GROWTH


def split(costs: Sequence[int], first: int, rest: int) -> list[tuple[int, int]]:
    """Cut items into consecutive runs (start, stop): the first run within `first` bytes, the others within
    `rest`. There is always at least one run (maybe empty); an item too big for any page gets a run of its
    own (its page will be over the budget, and the outbox reports it rather than sending it)."""
    runs: list[tuple[int, int]] = []
    start, room = 0, first
    for index, cost in enumerate(costs):
        if cost > room and index > start:
            runs.append((start, index))
            start, room = index, rest
        room -= cost
    runs.append((start, len(costs)))
    return runs


def room_state(
    head: pb.RoomState, users: Sequence[pb.User], chat: Sequence[pb.ChatMessage], ref: int, budget: int
) -> list[pb.ServerMessage]:
    """A RoomState (`head` with no users or chat) and the RoomStatePages that complete it.

    Members come first, in join order, then chat lines newest first, so the RoomState holds the newest
    lines that fit; within each message the lines are oldest first. `chat` is oldest first.
    """
    newest_first = list(reversed(chat))
    items: list[pb.User | pb.ChatMessage] = [*users, *newest_first]
    costs = [item_cost(item.ByteSize()) for item in items]
    first = pb.ServerMessage(ref=ref, room_state=head)
    first.room_state.more_pages = True
    more = pb.ServerMessage(room_state_page=pb.RoomStatePage(more_pages=True))
    runs = split(costs, room_left(first, budget), room_left(more, budget))
    messages: list[pb.ServerMessage] = []
    count = len(users)
    for number, (start, stop) in enumerate(runs):
        part_users = users[start : min(stop, count)]
        part_chat = newest_first[max(start, count) - count : max(stop, count) - count][::-1]
        last = number == len(runs) - 1
        if number == 0:
            message = first
            message.room_state.users.extend(part_users)
            message.room_state.chat_history.extend(part_chat)
            message.room_state.more_pages = not last
        else:
            page = pb.RoomStatePage(users=part_users, chat_history=part_chat, more_pages=not last)
            message = pb.ServerMessage(room_state_page=page)
        messages.append(message)
    return messages


def room_list(rooms: Sequence[pb.RoomSummary], ref: int, budget: int) -> list[pb.ServerMessage]:
    """A RoomList and the RoomListPages that complete it."""
    costs = [item_cost(room.ByteSize()) for room in rooms]
    first = pb.ServerMessage(ref=ref, room_list=pb.RoomList(more_pages=True))
    more = pb.ServerMessage(room_list_page=pb.RoomListPage(more_pages=True))
    runs = split(costs, room_left(first, budget), room_left(more, budget))
    messages: list[pb.ServerMessage] = []
    for number, (start, stop) in enumerate(runs):
        last = number == len(runs) - 1
        if number == 0:
            first.room_list.rooms.extend(rooms[start:stop])
            first.room_list.more_pages = not last
            messages.append(first)
        else:
            page = pb.RoomListPage(rooms=rooms[start:stop], more_pages=not last)
            messages.append(pb.ServerMessage(room_list_page=page))
    return messages


def room_list_deltas(
    upserted: Sequence[pb.RoomSummary], removed: Sequence[str], budget: int
) -> list[pb.ServerMessage]:
    """One RoomListDelta, or several when the changes do not fit one (each is applied on its own)."""
    costs = [item_cost(room.ByteSize()) for room in upserted]
    costs += [item_cost(len(name.encode())) for name in removed]
    room = room_left(pb.ServerMessage(room_list_delta=pb.RoomListDelta()), budget)
    count = len(upserted)
    return [
        pb.ServerMessage(
            room_list_delta=pb.RoomListDelta(
                upserted=upserted[start : min(stop, count)],
                removed=removed[max(start, count) - count : max(stop, count) - count],
            )
        )
        for start, stop in split(costs, room, room)
    ]


def history_page(
    lines: Sequence[pb.ChatMessage], has_more: bool, newer: bool, ref: int, budget: int
) -> pb.ServerMessage:
    """A ChatHistoryPage of `lines` (oldest first), cut to the budget.

    For a request of older lines (`newer` false) the newest lines are kept; for a catch-up request of
    newer lines, the oldest, so the next request (from the last line received) continues without a gap.
    Cutting sets has_more.
    """
    message = pb.ServerMessage(ref=ref, chat_history_page=pb.ChatHistoryPage(has_more=True))
    room = room_left(message, budget)
    ordered = list(lines) if newer else list(reversed(lines))
    kept = 0
    for line in ordered:
        room -= item_cost(line.ByteSize())
        if room < 0 and kept:  # at least one line, so asking again always gets further
            break
        kept += 1
    chosen = ordered[:kept] if newer else ordered[:kept][::-1]
    message.chat_history_page.messages.extend(chosen)
    message.chat_history_page.has_more = has_more or kept < len(ordered)
    return message
