"""Many nodes: the room list is the directory's, not this node's rooms.

Every node lists the same rooms, those with members on any node, as the directory (Redis) keeps them: its
whole list is read when the node starts and when its link comes back (`read`, answered by `install`), and
its deltas, numbered by one seq for the whole list, are applied in that order (`delta`). Room list
subscribers here hear what changed, as on one node (a RoomListDelta). A delta that skips a number means one
was lost: the list is read again. One node alone lists its own rooms (state.py, flush_room_list).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from pianorhythm.server.core.actions import ReadRoomList
from pianorhythm.server.core.models import summary_pb
from pianorhythm.server.core.state import CoreState, Summary

log = logging.getLogger("server.rooms")

WAITING_MAX: Final = 10_000  # deltas kept while the list is read; past it, the read covers them anyway


class RoomListOps:
    def __init__(self, state: CoreState) -> None:
        self.state = state

    def read(self) -> None:
        """Ask for the whole list; deltas wait for it."""
        self.state.list_seq = None
        self.state.list_waiting = []
        self.state.out.append(ReadRoomList())

    def install(self, seq: int, rooms: Iterable[Summary]) -> None:
        """The whole list as the directory had it at delta `seq`: subscribers hear how it differs from what
        they were shown, then the deltas numbered after it apply."""
        state = self.state
        if state.list_seq is not None and seq < state.list_seq:
            return  # an older read than the list here (two reads crossed)
        fresh = {room[0]: room for room in rooms}
        before = state.listed
        upserted = [summary_pb(s) for name, s in sorted(fresh.items()) if before.get(name) != s]
        removed = sorted(name for name in before if name not in fresh)
        state.listed = fresh
        state.list_seq = seq
        state.tell_subscribers(upserted, removed)
        waiting, state.list_waiting = state.list_waiting, []
        for number, up, gone in sorted(waiting):
            self.delta(number, up, gone)
        log.info("room list read: %d rooms at seq %d", len(fresh), seq)

    def delta(self, seq: int, upserted: Iterable[Summary], removed: Iterable[str]) -> None:
        """A delta from the directory, numbered `seq` in the list's order."""
        state = self.state
        if state.list_seq is None:
            if len(state.list_waiting) >= WAITING_MAX:
                state.list_waiting.clear()
            state.list_waiting.append((seq, tuple(upserted), tuple(removed)))
            return
        if seq <= state.list_seq:
            return  # in the list already
        if seq > state.list_seq + 1:
            log.warning(
                "room list delta %d after %d: one was lost, reading the list again", seq, state.list_seq
            )
            self.read()
            return
        state.list_seq = seq
        shown: list[Summary] = []
        for summary in upserted:
            if state.listed.get(summary[0]) != summary:
                state.listed[summary[0]] = summary
                shown.append(summary)
        gone = [name for name in removed if state.listed.pop(name, None) is not None]
        state.tell_subscribers([summary_pb(s) for s in shown], gone)
