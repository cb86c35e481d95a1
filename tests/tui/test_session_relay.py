"""The client session and engine against the real relay on loopback (the relay_server fixture)."""

import asyncio
import time

from pianorhythm.client import model as m
from pianorhythm.client.model import ConnectionState
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.audio.synth import NullSynth
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.tui.midi.fileplayer import read_midi_file
from pianorhythm.tui.midi.recorder import MidiRecorder
from pianorhythm.tui.net.session import ClientSession, SessionConfig
from pianorhythm.tui.net.tokens import TokenStore
from pianorhythm.wire import pianorhythm_pb2 as pb


class Inbox:
    def __init__(self):
        self.messages: list[pb.ServerMessage] = []
        self.changed = asyncio.Event()

    def __call__(self, message, received_ns):
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, predicate, timeout=5.0):
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                self.changed.clear()
                await self.changed.wait()


async def open_session(url, name, room=None, tokens=None, **kwargs):
    inbox = Inbox()
    session = ClientSession(SessionConfig(url=url, name=name, room=room, tokens=tokens, **kwargs), inbox)
    await session.start()
    assert await session.wait_connected(5)
    return session, inbox


async def together(a, b):
    """Wait until both engines are in the same (non-lobby) room and B knows A."""
    async with asyncio.timeout(5):
        while not (
            a.room is not None
            and b.room is not None
            and a.room.name == b.room.name
            and not a.room.is_lobby
            and b.player_stats(a.session.user_id) is not None
        ):
            await asyncio.sleep(0.02)


def in_room(name):
    return lambda msg: msg.WhichOneof("event") == "room_state" and msg.room_state.name == name


async def test_hello_join_chat_and_token(relay_server, tmp_path):
    tokens = TokenStore(tmp_path)
    alice, alice_in = await open_session(relay_server.url, "alice", room="jam", tokens=tokens)
    bob, bob_in = await open_session(relay_server.url, "bob", room="jam")
    try:
        assert alice.welcome.user.name == "alice"
        assert tokens.get(relay_server.url) == alice.welcome.resume_token != ""
        await alice_in.wait_for(in_room("jam"))
        state = (await bob_in.wait_for(in_room("jam"))).room_state
        assert {u.name for u in state.users} == {"alice", "bob"}
        assert alice.send(pb.ClientMessage(chat_send=pb.ChatSend(content="hello bob")))
        chat = await bob_in.wait_for(lambda msg: msg.WhichOneof("event") == "chat_message")
        assert chat.chat_message.content == "hello bob"
        assert chat.chat_message.user_name == "alice"
        # The clock burst has run: loopback RTT is small and the offset maps our clock to the server's.
        await asyncio.sleep(0.4)
        estimate = alice.clock.estimate
        assert estimate is not None and estimate.samples >= 8
        assert estimate.rtt_us < 50_000
    finally:
        await alice.close()
        await bob.close()
    assert alice.state is ConnectionState.CLOSED

    # The saved token restores the same user.
    again, again_in = await open_session(relay_server.url, "someone-else", tokens=tokens)
    try:
        assert again.welcome.resumed
        assert again.welcome.user.id == alice.welcome.user.id
        assert again.welcome.user.name == "alice"
    finally:
        await again.close()


async def test_notes_reach_the_other_engine_with_offsets_preserved(relay_server):
    a = Engine(EngineConfig(relay_server.url, "alice", room="band", save_token=False))
    b = Engine(EngineConfig(relay_server.url, "bob", room="band", save_token=False))
    scheduled: list[m.NotesScheduled] = []
    played: list[m.NotesPlayed] = []
    entered = asyncio.Event()

    def on_b(event):
        if isinstance(event, m.NotesScheduled):
            scheduled.append(event)
        elif isinstance(event, m.NotesPlayed):
            played.append(event)
        elif isinstance(event, m.RoomEntered) and len(event.room.users) == 2:
            entered.set()

    b.subscribe(on_b)
    await a.start()
    await b.start()
    try:
        assert await a.wait_connected(5) and await b.wait_connected(5)
        await together(a, b)
        await asyncio.sleep(0.3)  # the clock bursts
        t0 = time.perf_counter_ns()
        offsets_us = [0, 1_234, 2_500, 40_000]
        events = [
            MusicEvent(EventKind.NOTE, 60 + i, 100 - i, t0 + off * 1000) for i, off in enumerate(offsets_us)
        ]
        for event in events:
            a.play_local(event)  # same loop turn: one batch
        async with asyncio.timeout(5):
            while sum(len(p.events) for p in played) < len(events):
                await asyncio.sleep(0.01)
        got = [e for s in scheduled for e in s.events]
        assert [(e.number, e.value) for e in got] == [(e.number, e.value) for e in events]
        due = [e.time_ns for e in got]
        assert [(d - due[0]) // 1000 for d in due] == offsets_us
        stats = b.player_stats(a.session.user_id)
        assert stats is not None and stats.events == 4 and stats.late_count == 0
        assert 3.0 <= stats.delay_ms < 100
        # Dispatched at (about) the due time, on the remote player's own channel, in order.
        dispatched = [e for p in played if p.user_id == a.session.user_id for e in p.events]
        assert [e.number for e in dispatched] == [60, 61, 62, 63]
    finally:
        await a.close()
        await b.close()


class CountingSynth(NullSynth):
    def __init__(self):
        super().__init__("test")
        self.played: list[tuple[int, MusicEvent]] = []
        self.released: list[int] = []
        self.programs: dict[int, int] = {}

    def play(self, channel, event):
        self.played.append((channel, event))

    def release_all(self, channel):
        self.released.append(channel)

    def set_program(self, channel, program):
        self.programs[channel] = program


async def test_leaver_is_released_and_both_sides_are_recorded(relay_server, tmp_path):
    a_rec, b_rec = MidiRecorder(), MidiRecorder()
    b_synth = CountingSynth()
    a = Engine(EngineConfig(relay_server.url, "ann", room="rec", save_token=False), recorder=a_rec)
    b = Engine(
        EngineConfig(relay_server.url, "ben", room="rec", save_token=False), synth=b_synth, recorder=b_rec
    )
    left = asyncio.Event()
    b.subscribe(lambda e: left.set() if isinstance(e, m.UserLeft) and e.reason == "disconnected" else None)
    await a.start()
    await b.start()
    try:
        assert await a.wait_connected(5) and await b.wait_connected(5)
        await together(a, b)
        a.set_instrument(19)  # church organ: B's channel for ann follows her presence
        now = time.perf_counter_ns()
        a.play_local(MusicEvent(EventKind.CONTROL, 64, 127, now))
        a.play_local(MusicEvent(EventKind.NOTE, 60, 90, now + 1_000_000))
        a.play_local(MusicEvent(EventKind.NOTE, 64, 90, now + 2_000_000))
        async with asyncio.timeout(5):
            while len(b_synth.played) < 3 or b.scheduler.dispatched < 3:  # queued, then due
                await asyncio.sleep(0.01)
        channel = b.channels.channel_of(a.session.user_id)
        assert channel is not None and {ch for ch, _ in b_synth.played} == {channel}
        async with asyncio.timeout(5):
            while b_synth.programs.get(channel) != 19:
                await asyncio.sleep(0.01)
        await a.close()  # ann goes away holding two keys and the pedal
        async with asyncio.timeout(5):
            await left.wait()
        assert channel in b_synth.released
        assert b.channels.channel_of(a.session.user_id) is None
    finally:
        await a.close()
        await b.close()
    a_path, b_path = tmp_path / "a.mid", tmp_path / "b.mid"
    a_rec.save(a_path)
    b_rec.save(b_path)
    for path in (a_path, b_path):
        events = [t.event for t in read_midi_file(path).events]
        # The three events, then the releases: both keys up and the pedal up, nothing left hanging.
        assert [(e.kind, e.number, e.value) for e in events[:3]] == [
            (EventKind.CONTROL, 64, 127),
            (EventKind.NOTE, 60, 90),
            (EventKind.NOTE, 64, 90),
        ]
        assert sorted((e.kind, e.number, e.value) for e in events[3:]) == [
            (EventKind.NOTE, 60, 0),
            (EventKind.NOTE, 64, 0),
            (EventKind.CONTROL, 64, 0),
        ]
    b_data = read_midi_file(b_path)
    assert b_data.track_names[1:] == ["ann"]  # a track per player who played, named after them
    assert 19 in [p.program for p in b_data.programs if b_data.track_names[p.track] == "ann"]


async def test_clock_burst_then_settle_pings_then_the_slow_interval(relay_server):
    session, _ = await open_session(
        relay_server.url,
        "pinger",
        burst_pings=3,
        burst_spacing_s=0.01,
        settle_pings=4,
        settle_interval_s=0.02,
        ping_interval_s=60.0,
    )
    try:
        async with asyncio.timeout(5):
            while session.clock.estimate is None or session.clock.estimate.samples < 7:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # nothing more until the slow interval
        assert session.clock.estimate.samples == 7
    finally:
        await session.close()
