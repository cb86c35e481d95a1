"""pianorhythm-tui's one installed package.

Its own modules are the shared core: the wire contract and pure logic (no I/O, no UI, no audio).
`pianorhythm.tui` (the client) and `pianorhythm.server` (the relay) are the repository's top-level folders
tui/ and server/, linked in here by relative symlinks so the checkout and the wheel import the same names.
"""

__version__ = "0.1.0"  # the one version: pyproject.toml reads it ([tool.hatch.version])
