"""--play and --record in the TUI, on a real relay with a real listener; a SoundFont that is not there.

The app is built as the entry point builds it (options_from_args, the real engine factory) with no
--no-audio where the synth is the point; nothing here needs a sound card (a missing SoundFont is found
before any driver is tried).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mido

from pianorhythm.tui.app import PianoApp, options_from_args
from pianorhythm.tui.cli import build_parser
from pianorhythm.tui.midi.fileplayer import read_midi_file
from pianorhythm.tui.screens.room import RoomScreen
from pianorhythm.tui.widgets.status import StatusBar
from pianorhythm.wire import pianorhythm_pb2 as pb
from tests.e2e.headless_procs import REPO
from tests.tui.app_helpers import make_app, wait_for

DATA = Path(__file__).resolve().parents[1] / "data"
LONG_SONG = DATA / "m21-test02.mid"  # 18.5 s: still playing when the test stops it


def short_song(path: Path, keys: tuple[int, ...] = (60, 64, 67, 72), program: int = 40) -> Path:
    """Four notes a quarter of a second apart, on a violin (program 40): 1 s in all."""
    track = mido.MidiTrack([mido.Message("program_change", program=program, time=0)])
    for key in keys:
        track.append(mido.Message("note_on", note=key, velocity=90, time=0))
        track.append(mido.Message("note_off", note=key, velocity=0, time=240))  # 480 per beat: 0.25 s
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(path)
    return path


def key_presses(messages: list[pb.ServerMessage]) -> list[int]:
    return [
        e.note.key for msg in messages for e in msg.notes.events if e.HasField("note") and e.note.velocity > 0
    ]


def status_text(app: PianoApp) -> str:
    return str(app.screen.query_one(StatusBar).render())


async def test_play_reaches_the_room_and_record_writes_every_track(relay_server, relay_clients, config_dir):
    bob = await relay_clients("bob")
    await bob.act(join_room=pb.JoinRoom(name="jam"))
    await bob.recv("room_state")
    song = short_song(config_dir.parent / "short.mid")
    recording = config_dir.parent / "out" / "session.mid"
    app = make_app(
        config_dir,
        *("--connect", relay_server.url, "--name", "ann", "--room", "jam"),
        *("--play", str(song), "--exit-after-play", "--record", str(recording)),
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RoomScreen))
        first = await bob.recv("notes", timeout=5)
        await wait_for(pilot, lambda: "▶ short.mid 0:0" in status_text(app))
        assert "Ctrl+S stops" in status_text(app)
        # bob answers while ann plays: his notes go into ann's recording too
        await bob.act(
            note_batch=pb.NoteBatch(
                events=[
                    pb.NoteEvent(offset_us=0, note=pb.Note(key=50, velocity=70)),
                    pb.NoteEvent(offset_us=100_000, note=pb.Note(key=50, velocity=0)),
                ]
            )
        )
        await wait_for(pilot, lambda: app.return_value is not None, timeout=10)  # --exit-after-play
    await bob.pump(0.3)
    heard = [first, *bob.take("notes")]
    assert key_presses(heard) == [60, 64, 67, 72]
    # The last of ann's updates: her path figures (issue 14) may be sent before her instrument is set.
    ann = [m.user_updated.user for m in bob.take("user_updated") if m.user_updated.user.name == "ann"][-1]
    assert ann.instrument == 40  # the file's instrument, as headless sets it

    # ann's 8 notes and the file's program change, bob's 2 notes
    assert app.farewell == [(True, f"Recorded 11 events to {recording.resolve()}.")]
    data = read_midi_file(recording)
    assert data.track_names[1:] == ["ann", "bob"]  # nobody else: no empty tracks
    by_track = {
        name: [(t.event.number, t.event.value > 0) for t in data.events if t.track == index]
        for index, name in enumerate(data.track_names)
    }
    assert [key for key, down in by_track["ann"] if down] == [60, 64, 67, 72]
    assert by_track["bob"] == [(50, True), (50, False)]


async def test_the_stop_key_ends_the_playing_and_releases_every_key(relay_server, relay_clients, config_dir):
    bob = await relay_clients("bob")  # in the lobby: with no --room the file plays there
    app = make_app(config_dir, "--connect", relay_server.url, "--name", "ann", "--play", str(LONG_SONG))
    async with app.run_test(size=(100, 30)) as pilot:
        await bob.recv("notes", timeout=5)
        await wait_for(pilot, lambda: "▶ m21-test02.mid" in status_text(app))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "▶" not in status_text(app))
        assert any("Stopped playing m21-test02.mid" in n.message for n in app._notifications)
        await bob.pump(1.0)
        held: set[int] = set()
        for msg in bob.take("notes"):
            for event in msg.notes.events:
                if event.HasField("note"):
                    (held.add if event.note.velocity else held.discard)(event.note.key)
        assert held == set()  # the stop released what the file held down
        await bob.pump(1.0)
        assert bob.take("notes") == []  # and nothing more comes
        await pilot.press("ctrl+s")
        assert any("No file is playing" in n.message for n in app._notifications)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pianorhythm.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_a_missing_or_broken_play_file_is_one_sentence_before_the_ui(tmp_path):
    missing = run_cli("--no-audio", "--play", str(tmp_path / "nope.mid"), cwd=REPO)
    assert missing.returncode == 2
    nope = tmp_path / "nope.mid"
    assert missing.stderr == f"error: --play {nope}: MIDI file {str(nope)!r} does not exist.\n"
    cut = tmp_path / "cut.mid"
    cut.write_bytes(LONG_SONG.read_bytes()[:300])
    broken = run_cli("--no-audio", "--play", str(cut), cwd=REPO)
    assert broken.returncode == 2
    assert broken.stderr.count("\n") == 1 and "it ends before its last track does" in broken.stderr


def test_a_record_file_that_cannot_be_written_is_refused_before_anything_starts(tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder")
    for target, why in (
        (tmp_path, "that is a folder; name a file, e.g. out.mid"),
        (blocker / "x.mid", "is a file"),
    ):
        for mode in ([], ["--headless", "--connect", "ws://127.0.0.1:9/api/websocket"]):
            done = run_cli(*mode, "--no-audio", "--record", str(target), cwd=REPO)
            assert done.returncode == 2
            assert done.stderr.startswith(f"error: --record {target}: ") and done.stderr.count("\n") == 1
            assert why in done.stderr


async def test_a_missing_soundfont_is_one_line_and_the_app_goes_on_silently(
    relay_server, config_dir, monkeypatch
):
    hint = "fix the path or install one (Debian/Ubuntu: apt install timgm6mb-soundfont) or pass --soundfont "
    hint += "PATH."
    for argv, env, source in (
        (["--soundfont", "/nonexistent.sf2"], None, "'/nonexistent.sf2' from --soundfont"),
        ([], "/nonexistent/env.sf2", "'/nonexistent/env.sf2' from $PIANORHYTHM_SOUNDFONT"),
    ):
        if env is None:
            monkeypatch.delenv("PIANORHYTHM_SOUNDFONT", raising=False)
        else:
            monkeypatch.setenv("PIANORHYTHM_SOUNDFONT", env)
        args = build_parser().parse_args(["--connect", relay_server.url, "--name", "ann", *argv])
        app = PianoApp(options_from_args(args, config_dir / "config.toml"))
        await _runs_silently(app, f"playing silently: SoundFont {source} does not exist; {hint}")


async def _runs_silently(app: PianoApp, warning: str) -> None:
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.engine.room is not None)
        await wait_for(pilot, lambda: "audio silent" in status_text(app))
        assert [n.message for n in app._notifications if "SoundFont" in n.message] == [warning]
