"""SoundFont discovery order and its errors (real files in a temp dir)."""

from __future__ import annotations

import pytest

from pianorhythm.tui.audio.soundfont import ENV_VAR, SoundfontError, find_soundfont, list_soundfonts


@pytest.fixture
def fonts(tmp_path):
    repo = tmp_path / "soundfonts"
    repo.mkdir()
    system = tmp_path / "system"
    system.mkdir()
    (system / "TimGM6mb.sf2").write_bytes(b"sf")
    (system / "default-GM.sf2").symlink_to(system / "TimGM6mb.sf2")
    return repo, [system / "default-GM.sf2", system / "FluidR3_GM.sf2", system / "TimGM6mb.sf2"]


def test_explicit_path_wins(tmp_path, fonts):
    repo, system = fonts
    mine = tmp_path / "mine.sf2"
    mine.write_bytes(b"sf")
    choice = find_soundfont(mine, env={ENV_VAR: str(system[2])}, repo_dir=repo, system=system)
    assert choice.path == mine.resolve() and "--soundfont" in choice.reason


def test_missing_explicit_path_is_a_one_line_error(tmp_path, fonts):
    repo, system = fonts
    with pytest.raises(SoundfontError) as error:
        find_soundfont(tmp_path / "typo.sf2", env={}, repo_dir=repo, system=system)
    message = str(error.value)
    assert "typo.sf2" in message and "--soundfont" in message and "\n" not in message


def test_environment_variable_then_repo_folder_then_system(tmp_path, fonts):
    repo, system = fonts
    env_font = tmp_path / "env.sf2"
    env_font.write_bytes(b"sf")
    assert (
        find_soundfont(env={ENV_VAR: str(env_font)}, repo_dir=repo, system=system).path == env_font.resolve()
    )
    with pytest.raises(SoundfontError, match=ENV_VAR):
        find_soundfont(env={ENV_VAR: str(tmp_path / "gone.sf2")}, repo_dir=repo, system=system)
    (repo / "b.sf2").write_bytes(b"sf")
    (repo / "a.SF2").write_bytes(b"sf")
    (repo / "notes.txt").write_text("not a font")
    assert find_soundfont(env={}, repo_dir=repo, system=system).path == repo / "a.SF2"
    for font in repo.iterdir():
        font.unlink()
    choice = find_soundfont(env={}, repo_dir=repo, system=system)
    assert choice.path == system[2].resolve() and "system" in choice.reason


def test_nothing_found_says_how_to_fix(tmp_path):
    choice = find_soundfont(env={}, repo_dir=tmp_path / "none", system=[tmp_path / "x.sf2"])
    assert choice.path is None and "timgm6mb-soundfont" in choice.reason


def test_list_soundfonts_lists_each_file_once(tmp_path, fonts):
    repo, system = fonts
    (repo / "extra.sf2").write_bytes(b"sf")
    listed = list_soundfonts(repo_dir=repo, system=system, env={})
    assert listed == [repo / "extra.sf2", system[0]]  # default-GM and TimGM6mb are the same file
