"""The process-wide interpreter settings: applied by the entry point only, restored when it returns."""

from __future__ import annotations

import gc
import sys

import pytest

from pianorhythm import interpreter
from pianorhythm.interpreter import settle_gc, tuned, tuned_interpreter
from pianorhythm.tui import cli


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_outside_the_entry_point_nothing_is_frozen():
    assert not tuned()
    assert settle_gc() is False
    assert gc.get_freeze_count() == 0


def test_within_it_settle_gc_freezes_and_leaving_unfreezes():
    switch = sys.getswitchinterval()
    with tuned_interpreter():
        assert settle_gc() is True
        assert gc.get_freeze_count() > 0
        with tuned_interpreter():  # nested: changes nothing on the way out
            pass
        assert tuned() and gc.get_freeze_count() > 0
    assert not tuned()
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch  # nothing sets it any more


def test_restored_even_when_the_mode_fails():
    with pytest.raises(RuntimeError), tuned_interpreter():
        settle_gc()
        raise RuntimeError("the mode crashed")
    assert not tuned() and gc.get_freeze_count() == 0


def test_the_entry_point_applies_them_for_its_mode_and_restores_them(monkeypatch, fresh_logging):
    # fresh_logging: cli.main sets up logging for its mode, which must not outlive the test
    seen: list[tuple[bool, int]] = []

    def mode(_api: object) -> int:
        settle_gc()  # as the relay, the engine and the TUI do once built
        seen.append((interpreter.tuned(), gc.get_freeze_count()))
        return 0

    monkeypatch.setattr("pianorhythm.tui.midi.ports.print_ports", mode)
    switch = sys.getswitchinterval()
    assert cli.main(["--list-midi"]) == 0
    assert seen and seen[0][0] and seen[0][1] > 0
    assert not tuned() and gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch
