"""The kitty keyboard protocol layer (pianorhythm.tui.keys.kitty): the input filter (pure) and the flags'
push and pop. The real terminal test is tests/e2e/test_pty_keys.py."""

from __future__ import annotations

import importlib.metadata

from pianorhythm.tui.keys.kitty import (
    POP,
    PUSH,
    TEXTUAL_TESTED,
    DeviceAttributes,
    FlagsReply,
    KeyboardInput,
    KittyFilter,
    Release,
    driver_class_for,
)
from tests.tui.app_helpers import RecordingTerminal


def test_replies_to_the_start_queries_never_reach_textual():
    items = KittyFilter().feed("\x1b[?1u\x1b[?62;22c")
    assert items == [FlagsReply(1), DeviceAttributes()]


def test_a_terminal_without_the_protocol_answers_only_da1():
    assert KittyFilter().feed("\x1b[?64;1;2;6;22c") == [DeviceAttributes()]


def test_press_repeat_and_release():
    items = KittyFilter().feed("\x1b[122u\x1b[122;1:1u\x1b[122;1:2u\x1b[122;1:3u")
    # Presses and repeats go on to Textual as plain presses; the release does not.
    assert items == ["\x1b[122u\x1b[122u\x1b[122u", Release(122)]
    assert Release(122).character == "z"


def test_modifiers_and_text_survive_and_a_shifted_release_names_the_unshifted_key():
    items = KittyFilter().feed("\x1b[122;2:2;90u\x1b[122;2:3u\x1b[13;5:1u")
    assert items == ["\x1b[122;2;90u", Release(122), "\x1b[13;5u"]


def test_arrows_and_function_keys_with_event_types():
    # Textual's parser would fail on `CSI 1;1:3C` (it reads "1:3" as the modifiers): none reaches it.
    items = KittyFilter().feed("\x1b[C\x1b[1;1:2C\x1b[1;1:3C\x1b[1;5:3D\x1b[3;1:3~\x1b[1;5:2A\x1b[15;1:2~")
    assert items == ["\x1b[C\x1b[C\x1b[1;5A\x1b[15~"]


def test_a_chord_released_in_any_order():
    items = KittyFilter().feed("\x1b[122u\x1b[99u\x1b[98u\x1b[99;1:3u\x1b[122;1:3u\x1b[98;1:3u")
    assert items == ["\x1b[122u\x1b[99u\x1b[98u", Release(99), Release(122), Release(98)]


def test_everything_else_passes_through_untouched():
    data = "abc\x1b[A\x1b[<0;10;5M\x1b[200~pasted\x1b[201~\x1b[1;5C\x1b\x1b[3~é"
    assert KittyFilter().feed(data) == [data]


def test_a_sequence_cut_between_reads_is_held_until_the_rest_comes():
    kitty = KittyFilter()
    assert kitty.feed("x\x1b[122;1") == ["x"]
    assert kitty.feed(":3uy") == [Release(122), "y"]


def test_a_cut_sequence_that_never_completes_goes_on_as_text():
    kitty = KittyFilter()
    assert kitty.feed("\x1b[1") == []
    assert kitty.flush() == ["\x1b[1"]
    assert kitty.flush() == []


def test_a_lone_escape_is_not_held():
    assert KittyFilter().feed("\x1b") == ["\x1b"]


def test_flags_are_pushed_once_while_wanted_and_popped_on_stop_and_pushed_again_on_resume():
    keyboard = KeyboardInput("auto")
    driver = RecordingTerminal()
    keyboard.attach(driver)  # type: ignore[arg-type]
    keyboard.want_events(True)
    assert driver.out == [] and keyboard.label == "keys fixed"  # not detected yet
    keyboard.supported = True
    keyboard.want_events(True)
    keyboard.want_events(True)
    assert driver.out == [PUSH] and keyboard.label == "keys held"
    keyboard.detach()  # suspend or exit
    assert driver.out == [PUSH, POP]
    keyboard.attach(driver)  # type: ignore[arg-type]
    assert driver.out == [PUSH, POP, PUSH]
    keyboard.want_events(False)  # chat took focus
    keyboard.want_events(False)
    assert driver.out == [PUSH, POP, PUSH, POP]


def test_the_setting_overrides_detection():
    driver = RecordingTerminal()
    forced = KeyboardInput("press-release")
    forced.attach(driver)  # type: ignore[arg-type]
    forced.want_events(True)
    assert driver.out == [PUSH] and forced.press_release
    fixed = KeyboardInput("fixed")
    fixed.supported = True
    fixed.attach(driver)  # type: ignore[arg-type]
    fixed.want_events(True)
    assert driver.out == [PUSH] and not fixed.press_release
    assert KeyboardInput("nonsense").setting == "auto"


def test_without_a_terminal_keys_are_fixed():
    keyboard = KeyboardInput("press-release")
    keyboard.want_events(True)
    assert not keyboard.press_release and not keyboard.pushed


def test_the_driver_is_written_for_the_textual_it_runs_with():
    # run_input_thread copies LinuxDriver's (Textual 8.2): another version must be looked at again (and
    # TEXTUAL_TESTED moved), or key release is off for everyone.
    assert importlib.metadata.version("textual").startswith(TEXTUAL_TESTED)
    assert driver_class_for(KeyboardInput()) is not None
