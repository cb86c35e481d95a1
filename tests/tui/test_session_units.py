"""Reconnect backoff and the resume-token store (no network)."""

import json
import random
import stat

from pianorhythm.tui.net.backoff import Backoff
from pianorhythm.tui.net.tokens import TokenStore


def test_backoff_doubles_from_one_second_with_jitter_and_gives_up_after_five():
    backoff = Backoff(rng=random.Random(5))
    for nominal in [1, 2, 4, 8, 16]:
        delay = backoff.next_delay()
        assert delay is not None and nominal * 0.5 <= delay <= nominal * 1.5
        backoff.failed()
    assert backoff.next_delay() is None
    backoff.reset()
    delay = backoff.next_delay()
    assert delay is not None and 0.5 <= delay <= 1.5  # back to the first step


def test_backoff_is_capped_at_thirty_seconds():
    backoff = Backoff(max_attempts=50, rng=random.Random(1))
    backoff.failures = 20
    samples = [backoff.next_delay() for _ in range(200)]
    assert all(s is not None for s in samples)
    delays = [s for s in samples if s is not None]
    assert all(15 <= s <= 45 for s in delays)
    assert min(delays) < 20 and max(delays) > 40  # the jitter really spreads them


def test_token_store_round_trip_per_server(tmp_path):
    store = TokenStore(tmp_path / "cfg")
    assert store.get("ws://a") == ""
    store.set("ws://a", "tok-a")
    store.set("ws://b", "tok-b")
    assert TokenStore(tmp_path / "cfg").get("ws://a") == "tok-a"
    assert json.loads((tmp_path / "cfg" / "tokens.json").read_text()) == {
        "ws://a": "tok-a",
        "ws://b": "tok-b",
    }
    assert stat.S_IMODE((tmp_path / "cfg" / "tokens.json").stat().st_mode) == 0o600
    store.forget("ws://a")
    assert store.get("ws://a") == ""
    assert store.get("ws://b") == "tok-b"


def test_token_store_survives_a_corrupt_file(tmp_path):
    (tmp_path / "tokens.json").write_text("{not json")
    store = TokenStore(tmp_path)
    assert store.get("ws://a") == ""
    store.set("ws://a", "t")
    assert store.get("ws://a") == "t"


def test_token_store_defaults_to_the_platform_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert TokenStore().path == tmp_path / "pianorhythm-tui" / "tokens.json"
