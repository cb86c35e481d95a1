"""A setting that keeps frames smooth: the garbage collector.

A full collection walks every live object; a Textual app holds tens of thousands (widgets, styles, cached
strips), so one takes 10-40 ms and shows as a stutter. `settle_gc()` collects once and then freezes what is
alive (`gc.freeze()`): later collections only look at objects made after it. Call it when the screen has
settled (after start-up and after a room screen mounts); it unfreezes first, so a screen that was closed
since the last call is still collected.
"""

from __future__ import annotations

import gc


def settle_gc() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()
