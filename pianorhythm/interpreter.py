"""The process-wide interpreter settings, in one place: the entry point applies them and restores them.

    with tuned_interpreter():   # pianorhythm.tui.cli.main, around the TUI, --headless and --server alike
        ...                     # settle_gc() once something long-lived has been built

One setting is left: the cyclic garbage collector. A full collection walks every live object (a Textual
app holds tens of thousands: widgets, styles, cached strips; the relay its rooms and connections) and
holds the GIL 10-40 ms meanwhile: a stutter on screen, and remote notes that arrive during it reach the
synth's queue late. `settle_gc()` collects once and then freezes what is alive (`gc.freeze()`): later
collections only look at objects made since. Call it when something long-lived has been built: the relay
once it listens, the engine once started, the TUI once a screen has settled; it unfreezes first, so a
screen closed since the last call is still collected. Outside `tuned_interpreter()` (a test, a program
that uses the engine as a library) it does nothing: a library leaves its host's collector alone. Leaving
the block unfreezes everything, so the process is as it was.

Not set any more: `sys.setswitchinterval` and the 1 ns timer slack were for a thread that slept and spun
to each note's due time; remote notes are now timed by the synth's own sequencer
(pianorhythm.tui.audio.scheduler).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_depth = 0  # how many tuned_interpreter() blocks are open (a nested one changes nothing)


@contextmanager
def tuned_interpreter() -> Iterator[None]:
    """Within the block, settle_gc() freezes; on leaving it, every frozen object is unfrozen."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()


def tuned() -> bool:
    """True inside tuned_interpreter()."""
    return _depth > 0


def settle_gc() -> bool:
    """Collect, then move everything alive out of the collector's reach; False (nothing done) outside
    tuned_interpreter()."""
    if not tuned():
        return False
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    log.debug("gc: %d objects frozen", gc.get_freeze_count())
    return True
