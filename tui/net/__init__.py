"""The client's network shell: the WebSocket session running the client core (pianorhythm.client), the
reconnect backoff, TLS, the resume-token store and the note dispatcher."""
