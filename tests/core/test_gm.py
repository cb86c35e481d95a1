"""General MIDI program names."""

from pianorhythm.gm import GM_FAMILIES, GM_PROGRAM_NAMES, program_family, program_name


def test_names():
    assert len(GM_PROGRAM_NAMES) == 128 and len(set(GM_PROGRAM_NAMES)) == 128
    assert program_name(0) == "Acoustic Grand Piano"
    assert program_name(40) == "Violin"
    assert program_name(127) == "Gunshot"
    assert program_name(128) == "Program 128"
    assert len(GM_FAMILIES) == 16
    assert program_family(40) == "Strings" and program_family(-1) == ""
