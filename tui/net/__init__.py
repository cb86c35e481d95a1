"""The client's network shell: the WebSocket session running the client core (pianorhythm.client), the
reconnect backoff, TLS and the resume-token store (notes are timed by pianorhythm.tui.audio.scheduler)."""
