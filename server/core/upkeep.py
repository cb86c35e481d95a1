"""Bounded growth: what the core forgets, and when, all driven by `tick(now)`.

- A user's recent room (where a resume takes them back) expires `resume_room_s` after they left it.
- Every `store_sweep_s` (and at start): stored rooms nobody entered for `room_expiry_s` are forgotten,
  users not seen for `user_expiry_s` are pruned, and chat preloaded for joins that were refused is let go.

(Throttle buckets, room creation's among them, are forgotten by the 60 s sweep in relay.py.) Recent-room
deadlines are rounded up to whole seconds, so a churn of leaves costs the timer at most one wake-up a second.
"""

from __future__ import annotations

import logging

from pianorhythm.server.core.actions import DeleteRoom, Persist, PruneUsers
from pianorhythm.server.core.limits import US
from pianorhythm.server.core.state import CoreState

log = logging.getLogger("server.upkeep")


def _whole_second(us: int) -> int:
    return -(-us // US) * US


class UpkeepOps:
    def __init__(self, state: CoreState) -> None:
        self.state = state

    def upkeep(self, now: int) -> None:
        self.expire_recent(now)
        if now >= self.state.store_sweep_due_us:
            self.sweep_stored(now)

    def upkeep_deadline(self) -> int:
        oldest = next(iter(self.state.recent_rooms.values()), None)
        if oldest is None:
            return self.state.store_sweep_due_us
        expiry = _whole_second(oldest[1] + int(self.state.limits.resume_room_s * US))
        return min(expiry, self.state.store_sweep_due_us)

    def expire_recent(self, now: int) -> None:
        cutoff = now - int(self.state.limits.resume_room_s * US)
        recent = self.state.recent_rooms
        while recent:
            uid, (_, left_us) = next(iter(recent.items()))
            if left_us > cutoff:
                break
            del recent[uid]
        if not recent:
            self.state.recent_rooms = {}  # a dict keeps its table after deletions: let a spike's go

    def sweep_stored(self, now: int) -> None:
        lim = self.state.limits
        self.state.store_sweep_due_us = now + int(lim.store_sweep_s * US)
        cutoff = now - int(lim.room_expiry_s * US)
        stale = [
            name
            for name, record in self.state.persisted.items()
            if record.last_used_us <= cutoff and name not in self.state.rooms
        ]
        for name in stale:
            del self.state.persisted[name]
            self.state.out.append(Persist(DeleteRoom(name)))
        if stale:
            log.info("forgot %d room(s) nobody entered for %g days", len(stale), lim.room_expiry_s / 86_400)
        # Chat is preloaded just before the join that needs it; what is still here was for a refused join.
        for name in [n for n in self.state.preloaded_chat if n not in self.state.rooms]:
            del self.state.preloaded_chat[name]
        before = now - int(lim.user_expiry_s * US)
        self.state.out.append(Persist(PruneUsers(before, frozenset(self.state.by_user))))
