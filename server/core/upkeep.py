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
from pianorhythm.server.core.admin import AdminOps
from pianorhythm.server.core.limits import US

log = logging.getLogger("server.upkeep")


def _whole_second(us: int) -> int:
    return -(-us // US) * US


class UpkeepOps(AdminOps):
    def _upkeep(self, now: int) -> None:
        self._expire_recent(now)
        if now >= self.store_sweep_due_us:
            self._sweep_stored(now)

    def _upkeep_deadline(self) -> int:
        oldest = next(iter(self.recent_rooms.values()), None)
        if oldest is None:
            return self.store_sweep_due_us
        expiry = _whole_second(oldest[1] + int(self.limits.resume_room_s * US))
        return min(expiry, self.store_sweep_due_us)

    def _expire_recent(self, now: int) -> None:
        cutoff = now - int(self.limits.resume_room_s * US)
        recent = self.recent_rooms
        while recent:
            uid, (_, left_us) = next(iter(recent.items()))
            if left_us > cutoff:
                break
            del recent[uid]
        if not recent:
            self.recent_rooms = {}  # a dict keeps its table after deletions: let a spike's go

    def _sweep_stored(self, now: int) -> None:
        lim = self.limits
        self.store_sweep_due_us = now + int(lim.store_sweep_s * US)
        cutoff = now - int(lim.room_expiry_s * US)
        stale = [
            name
            for name, record in self.persisted.items()
            if record.last_used_us <= cutoff and name not in self.rooms
        ]
        for name in stale:
            del self.persisted[name]
            self._out.append(Persist(DeleteRoom(name)))
        if stale:
            log.info("forgot %d room(s) nobody entered for %g days", len(stale), lim.room_expiry_s / 86_400)
        # Chat is preloaded just before the join that needs it; what is still here was for a refused join.
        for name in [n for n in self.preloaded_chat if n not in self.rooms]:
            del self.preloaded_chat[name]
        before = now - int(lim.user_expiry_s * US)
        self._out.append(Persist(PruneUsers(before, frozenset(self.by_user))))
