"""Remote notes booked by the scheduler once due reach subscribers in batches, all of them and in order,
without a loop turn per event: the first after a pause at once, the rest with the next incoming message or
the flush timer. No network: the engine runs the core's effects for server messages fed to it directly."""

import asyncio

from pianorhythm.client import model as m
from pianorhythm.events import EventKind, MusicEvent
from pianorhythm.tui.engine import Engine, EngineConfig
from pianorhythm.wire import pianorhythm_pb2 as pb


def note(key, velocity=90):
    return MusicEvent(EventKind.NOTE, key, velocity, 0)


def receive(engine, message):
    """As the session shell does with a message from the server."""
    engine.session.run(engine.core.handle(message, 0))


async def make_engine():
    engine = Engine(EngineConfig("ws://unused", "me", save_token=False, played_flush_s=0.05))
    engine._loop = asyncio.get_running_loop()
    engine.core.link.welcome = pb.Welcome(user=pb.User(id=1, name="me"))
    users = [pb.User(id=1, name="me"), pb.User(id=2, name="them")]
    receive(engine, pb.ServerMessage(room_state=pb.RoomState(name="r", users=users)))
    seen: list[m.EngineEvent] = []
    engine.subscribe(seen.append)
    return engine, seen


def played(seen):
    return [e.events for e in seen if isinstance(e, m.NotesPlayed)]


async def test_played_notes_are_batched_and_ride_along_with_incoming_messages():
    engine, seen = await make_engine()
    engine._played_scheduled(0, 2, note(60))  # as the scheduler does once it is due
    await asyncio.sleep(0)
    assert played(seen) == [(note(60),)]  # the first after a pause: at once

    engine._played_scheduled(0, 2, note(62))
    engine._played_scheduled(0, 2, note(60, 0))
    await asyncio.sleep(0)
    assert len(played(seen)) == 1  # no wake per event while the flush is armed

    typing = pb.ServerMessage(typing=pb.Typing(user_id=2, typing=True))
    receive(engine, typing)  # the next arrival delivers them first, in order
    assert played(seen)[1] == (note(62), note(60, 0))
    assert isinstance(seen[-1], m.TypingChanged)

    engine._played_scheduled(0, 2, note(64))
    await asyncio.sleep(0.2)  # no message: the timer delivers it, then disarms
    assert played(seen)[2] == (note(64),)
    assert engine._played_timer is None and not engine._played_pending

    engine._played_scheduled(0, 2, note(65))  # after the pause: at once again
    await asyncio.sleep(0)
    assert played(seen)[3] == (note(65),)
    await engine.close()


async def test_a_burst_arrives_whole_in_a_few_batches():
    engine, seen = await make_engine()
    events = [note(40 + i % 40, 90 if i % 2 == 0 else 0) for i in range(200)]
    for i, event in enumerate(events):
        engine._played_scheduled(0, 2, event)
        if i % 10 == 9:
            await asyncio.sleep(0.002)  # ten events due per 2 ms
    await asyncio.sleep(0.3)
    batches = played(seen)
    assert [e for batch in batches for e in batch] == events
    assert len(batches) < 20
    await engine.close()
