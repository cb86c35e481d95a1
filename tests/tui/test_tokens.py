"""The saved-token claim: one process at a time per server, freed when the holder closes or dies."""

import subprocess
import sys

from pianorhythm.tui.net.tokens import TokenStore

URL = "ws://127.0.0.1:8765/api/websocket"

HOLDER = """
import sys, time
from pianorhythm.tui.net.tokens import TokenStore
claim = TokenStore(sys.argv[1]).claim(sys.argv[2])
print("held" if claim is not None else "refused", flush=True)
time.sleep(60)
"""


def test_a_claim_is_exclusive_per_server_until_released(tmp_path):
    store = TokenStore(tmp_path)
    first = store.claim(URL)
    assert first is not None and first.held
    assert store.claim(URL) is None  # a second claim on the same file, even in this process
    assert TokenStore(tmp_path).claim(URL) is None
    other = store.claim("ws://elsewhere:1/api/websocket")  # another server: its own lock
    assert other is not None and other.held
    first.release()
    first.release()  # idempotent
    again = store.claim(URL)
    assert again is not None and again.held
    again.release()
    other.release()


def test_the_lock_file_sits_next_to_tokens_json_and_names_the_server_by_hash(tmp_path):
    store = TokenStore(tmp_path)
    claim = store.claim(URL)
    assert claim is not None and claim.held
    assert claim.path.parent == store.path.parent == tmp_path
    assert claim.path.name.startswith("tokens-") and claim.path.name.endswith(".lock")
    assert store.lock_path(URL) != store.lock_path(URL + "x")
    claim.release()


def test_a_lock_held_by_another_process_is_free_again_once_it_is_killed(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), URL], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        assert TokenStore(tmp_path).claim(URL) is None
    finally:
        proc.kill()  # SIGKILL: no chance to release anything
        proc.wait(10)
    claim = TokenStore(tmp_path).claim(URL)
    assert claim is not None and claim.held
    claim.release()
