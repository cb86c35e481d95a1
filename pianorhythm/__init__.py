"""Shared core of pianorhythm-tui: the wire contract and pure logic (no I/O, no UI, no audio)."""

__version__ = "0.1.0"
