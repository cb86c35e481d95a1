"""Textual's Header, safe to drop while its title update is pending.

Header updates its title from a watcher that runs a turn later; if the screen goes in between (the app
switches rooms twice in quick succession, e.g. a session replaced and resumed) its title widget is already
gone and the query raises NoMatches, which would end the app. This Header sets up the same watchers but
skips the update when there is nothing left to update.
"""

from __future__ import annotations

from textual import events
from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.widgets import Header, Static


class SafeHeader(Header):
    def _on_mount(self, event: events.Mount) -> None:
        event.prevent_default()  # instead of Header._on_mount (nothing else below it acts on Mount)

        async def set_title() -> None:
            if not self.is_attached:
                return
            try:
                self.query_one("HeaderTitle", Static).update(self.format_title())
            except (NoMatches, NoScreen):
                pass

        self.watch(self.app, "title", set_title)
        self.watch(self.app, "sub_title", set_title)
        self.watch(self.screen, "title", set_title)
        self.watch(self.screen, "sub_title", set_title)
