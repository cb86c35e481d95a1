"""MIDI input ports: which MIDI system, which ports exist, which one to open.

python-rtmidi does the talking (ALSA sequencer or JACK on Linux, CoreMIDI, WinMM). A machine with no MIDI
system at all (no /dev/snd/seq, no JACK server) is normal for a computer-keyboard player: every function
here turns that into `MidiUnavailable` with one sentence, never a crash or a screenful of library noise.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any, Final

from pianorhythm.tui.audio.clog import captured_stderr

CLIENT_NAME: Final = "pianorhythm-tui"
MIDI_APIS: Final = ("alsa", "jack")
# Ports that are never a keyboard: ALSA's loopback, software synths' and sequencers' own ports, us.
_NOT_HARDWARE: Final = re.compile(
    r"midi through|rtmidi|pianorhythm|fluid|timidity|virmidi|virtual|qsynth|zynaddsubfx|loopmidi|iac driver",
    re.IGNORECASE,
)
_ALSA_ADDRESS: Final = re.compile(r"\s+\d+:\d+$")


class MidiUnavailable(Exception):
    """No MIDI system to talk to; str() is one sentence saying which and what to do."""


class GoneClient:
    """Stands in for an rtmidi client (input or output) after the MIDI system went away: lists no ports,
    opens none, sends nothing."""

    def get_ports(self) -> list[str]:
        return []

    def open_port(self, index: int, name: str) -> None:
        raise MidiUnavailable("the MIDI system is gone")

    def send_message(self, message: list[int]) -> None:
        pass

    def cancel_callback(self) -> None:
        pass

    def close_port(self) -> None:
        pass

    def delete(self) -> None:
        pass


def default_api() -> str | None:
    """ALSA on Linux; elsewhere None (the platform's own system: CoreMIDI, Windows MM)."""
    return "alsa" if sys.platform.startswith("linux") else None


def rtmidi_api(api: str | None) -> int:
    """The python-rtmidi API constant for "alsa", "jack" or None (the platform default)."""
    import rtmidi

    api = api or default_api()
    if api is None:
        return int(rtmidi.API_UNSPECIFIED)
    apis = {"alsa": rtmidi.API_LINUX_ALSA, "jack": rtmidi.API_UNIX_JACK}
    if api not in apis:
        raise MidiUnavailable(f"Unknown MIDI system {api!r}; use --midi-api alsa or --midi-api jack.")
    return int(apis[api])


def mido_backend_name(api: str | None) -> str:
    """The same choice as a mido backend name, e.g. "mido.backends.rtmidi/LINUX_ALSA"."""
    api = api or default_api()
    suffix = {"alsa": "/LINUX_ALSA", "jack": "/UNIX_JACK"}.get(api or "", "")
    return f"mido.backends.rtmidi{suffix}"


def _unavailable_message(api: str | None) -> str:
    name = api or default_api() or "the system's"
    if name == "jack":
        return "No MIDI input: the JACK server is not running (start it, or use --midi-api alsa)."
    if name == "alsa":
        return (
            "No MIDI input: the ALSA sequencer is not available (is /dev/snd/seq there? try --midi-api jack)."
        )
    return f"No MIDI input: {name} MIDI system is not available."


def open_rtmidi_in(api: str | None, client_name: str = CLIENT_NAME) -> Any:
    """A python-rtmidi MidiIn client on `api` (no port open yet); raises MidiUnavailable."""
    try:
        import rtmidi
    except ImportError as error:  # pragma: no cover - a dependency
        raise MidiUnavailable(
            "No MIDI input: python-rtmidi is not installed (pip install python-rtmidi)."
        ) from error
    code = rtmidi_api(api)
    with captured_stderr(f"MIDI {api or 'default'} client"):
        try:
            return rtmidi.MidiIn(code, name=client_name)
        except (rtmidi.RtMidiError, SystemError, RuntimeError) as error:
            raise MidiUnavailable(_unavailable_message(api)) from error


def list_input_ports(api: str | None = None) -> list[str]:
    """Names of the ports a keyboard could be played from; raises MidiUnavailable with no MIDI system."""
    client = open_rtmidi_in(api, f"{CLIENT_NAME}-list")
    try:
        return [str(port) for port in client.get_ports()]
    finally:
        client.delete()


def list_ports_by_api(api: str | None = None) -> list[tuple[str, str]]:
    """(MIDI system, port name) for every input port: on `api` if given, else on every system that answers
    (ALSA and JACK on Linux; "" for the platform's own elsewhere). A system that is not running lists none.
    """
    apis = [api] if api else list(MIDI_APIS) if default_api() else [""]
    found: list[tuple[str, str]] = []
    for name in apis:
        try:
            found += [(name, port) for port in list_input_ports(name or None)]
        except MidiUnavailable:
            continue
    return found


def missing_port_message(port: str, api: str | None, reason: str = "") -> str:
    """Why the saved or asked-for `port` is not playing, in one or two sentences for the user."""
    system = api or default_api()
    where = f" ({system})" if system else ""
    return f"MIDI port {port!r}{where} not found; pick one in F2." + (f" {reason}" if reason else "")


def port_key(name: str) -> str:
    """A port's identity across replugs: ALSA appends "client:port" numbers that may change."""
    return _ALSA_ADDRESS.sub("", name).casefold()


def is_hardware_port(name: str) -> bool:
    """Heuristic: False for loopback/virtual/software ports (Midi Through, RtMidi, synths, ourselves)."""
    return _NOT_HARDWARE.search(name) is None


def choose_port(ports: Sequence[str], wanted: str | None = None, last_used: str | None = None) -> str | None:
    """The port to open: the first whose name contains `wanted` (case-insensitive) if given, else the
    last used one if present, else the first hardware-looking port. None when nothing fits.
    """
    if wanted:
        needle = wanted.casefold()
        return next((port for port in ports if needle in port.casefold()), None)
    if last_used:
        key = port_key(last_used)
        match = next((port for port in ports if port_key(port) == key), None)
        if match is not None:
            return match
    return next((port for port in ports if is_hardware_port(port)), None)


def print_ports(api: str | None) -> int:
    """`pianorhythm-tui --list-midi`: the input then the output ports on stdout, one per line, each as
    "in<TAB>NAME" or "out<TAB>NAME" (`cut -f2` gives the names).

    Exit status 0 when the MIDI system answered (even with no ports: a line on stderr says so), 1 when there
    is no MIDI system to ask, with one line on stderr. Like `jack_lsp` or `aconnect -l`, a script can tell
    "nothing plugged in" from "could not look".
    """
    from .output import list_output_ports

    try:
        inputs = list_input_ports(api)
        outputs = list_output_ports(api)
    except MidiUnavailable as error:
        print(error, file=sys.stderr)
        return 1
    if not inputs and not outputs:
        print("No MIDI ports (plug in a keyboard or a synth, then run this again).", file=sys.stderr)
    for port in inputs:
        print(f"in\t{port}")
    for port in outputs:
        print(f"out\t{port}")
    return 0
