"""The client without I/O: what the TUI, headless mode and tests all run. No sockets, no event loop, no
synth; time is passed in.

The path of a note, and where each step lives:

    MIDI in / keys         tui/midi/input.py, tui/screens/room.py (pianorhythm/keymap.py) -> Engine.play_local
    client core            ClientCore.local_input (core.py) -> PlayLocal + a NoteBatch at the next tick,
                           stamped with its capture time in server time (session.py, pianorhythm/notes.py)
    wire                   pianorhythm/wire/codec.py, written by tui/net/session.py (asyncio + websockets)
    relay core             server/core/relay.py: checks, stamps and relays it as RelayedNotes
    wire                   server/shell.py and server/outbox.py write it, tui/net/session.py reads it
    client core            ClientCore.receive -> ScheduleNote(due_ns) from the player's PlayoutState
                           (pianorhythm/playout.py) and the clock offset (pianorhythm/clock.py)
    scheduler              tui/audio/scheduler.py queues it in the synth for due_ns, on the player's channel
    synth                  tui/audio/synth.py (FluidSynth), and the screen through NotesPlayed

Modules: model.py (what the UI is told), effects.py (what the shells do), session.py (connection-level
state: Hello, resume, rejoin, chat catch-up, clock sync), core.py (room-level state and playout),
requests.py (the user's requests), pages.py (paged room states and lists put back together).
"""
