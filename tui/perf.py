"""Settings that keep frames smooth and cheap: the garbage collector and the compositor.

A full collection walks every live object; a Textual app holds tens of thousands (widgets, styles, cached
strips), so one takes 10-40 ms and shows as a stutter. `settle_gc()` collects once and then freezes what is
alive (`gc.freeze()`): later collections only look at objects made after it. Call it when the screen has
settled (after start-up and after a room screen mounts); it unfreezes first, so a screen that was closed
since the last call is still collected.

`RegionCompositor`: Textual's compositor, on a partial update, asks every widget whose *clip* (its
container's viewport) overlaps the changed area for its lines, so when one child of the screen changes
(the roll, 20 times a second) the header, footer, status bar and the rest are rendered again too, to be
thrown away. This one asks only the widgets whose *visible region* overlaps it, and stops at the first one
that covers it whole (the rest are behind it): the lines written to the terminal are the same.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip


def settle_gc() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class RegionCompositor(Compositor):
    """A compositor that renders, for a partial update, only the widgets the update overlaps."""

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if not crop:
            yield from super()._get_renders(crop)
            return
        overlaps = crop.overlaps
        for widget, (region, clip) in self.visible_widgets.items():
            visible = region.intersection(clip)
            if visible.width and visible.height and overlaps(visible):
                yield region, clip, widget.render_lines(visible.translate((-region.x, -region.y)))
                if visible.contains_region(crop):
                    return  # the widgets behind it (in front come first) would not show in the update
