"""Headless processes read the TUI's config.toml and say in one line how they sound (or why not)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.headless_procs import Proc, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, url = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield url
    finally:
        server.kill()


def run_headless(workdir: Path, url: str, *args: str, env: dict[str, str] | None = None) -> Proc:
    """A --headless process of 1 s in the lobby, with its own config dir; waits for it to end."""
    env = {"PIANORHYTHM_CONFIG_DIR": str(workdir / "cfg"), "PIANORHYTHM_SOUNDFONT": "", **(env or {})}
    proc = Proc(["--headless", "--connect", url, "--duration", "1", *args], workdir, "bot", env=env)
    assert proc.wait(30) == 0, proc.stderr
    return proc


def config_dir_with(workdir: Path, toml: str) -> Path:
    (workdir / "cfg").mkdir(parents=True)
    (workdir / "cfg" / "config.toml").write_text(toml, encoding="utf-8")
    return workdir


def test_the_config_names_the_bot_and_flags_win(tmp_path: Path, server_url: str) -> None:
    toml = 'name = "carol"\ncolor = "#123456"\n'
    carol = run_headless(config_dir_with(tmp_path / "carol", toml), server_url, "--no-audio")
    assert re.search(r"^\S+ welcome id=\d+ name=carol$", carol.stdout, re.MULTILINE), carol.stdout

    # A fresh identity (no resume token), so only the flag decides the name.
    dave = run_headless(config_dir_with(tmp_path / "dave", toml), server_url, "--no-audio", "--name", "dave")
    assert re.search(r" welcome id=\d+ name=dave$", dave.stdout, re.MULTILINE), dave.stdout


def test_without_a_configured_name_it_is_a_bot(tmp_path: Path, server_url: str) -> None:
    bot = run_headless(tmp_path, server_url, "--no-audio")
    assert re.search(r" welcome id=\d+ name=bot-\d{4}$", bot.stdout, re.MULTILINE), bot.stdout


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["--soundfont", "/nonexistent.sf2"], {}, "'/nonexistent.sf2' from --soundfont"),
        (
            [],
            {"PIANORHYTHM_SOUNDFONT": "/nonexistent/env.sf2"},
            "'/nonexistent/env.sf2' from $PIANORHYTHM_SOUNDFONT",
        ),
    ],
)
def test_a_missing_soundfont_is_one_line_and_the_bot_plays_on(
    tmp_path: Path, server_url: str, args: list[str], env: dict[str, str], source: str
) -> None:
    bot = run_headless(tmp_path, server_url, *args, env=env)
    assert "Traceback" not in bot.stderr
    assert [line for line in bot.stderr.splitlines() if "SoundFont" in line] == [
        f"warning: playing silently: SoundFont {source} does not exist; fix the path or install one "
        "(Debian/Ubuntu: apt install timgm6mb-soundfont) or pass --soundfont PATH."
    ]
    assert "room lobby users=" in bot.stdout


def test_audio_is_one_line_whichever_drivers_fail(tmp_path: Path, server_url: str) -> None:
    """Probing pulseaudio, pipewire, alsa and jack in turn is DEBUG detail; the outcome is one line."""
    bot = run_headless(tmp_path, server_url)
    assert "did not start" not in bot.stderr
    said = [line for line in bot.stdout.splitlines() if " audio " in line]
    said += [line for line in bot.stderr.splitlines() if "silently" in line]
    assert len(said) == 1, (bot.stdout, bot.stderr)
    assert re.search(r" audio fluidsynth/\w+ · |^warning: playing silently: ", said[0]), said
