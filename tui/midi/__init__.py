"""MIDI devices and files: input ports (with hot-plug), the recorder and the file player."""
