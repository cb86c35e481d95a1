"""Two headless clients sharing one config dir (the README's two-terminals case) are two users, and stay
connected; once the first is killed, the next client resumes the saved identity (its lock died with it)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.headless_procs import Proc, start_server

pytestmark = pytest.mark.slow


def shared_headless(workdir, url, name, *extra):
    args = ["--headless", "--connect", url, "--name", name, "--no-audio", *extra]
    return Proc(args, workdir, name, env={"PIANORHYTHM_CONFIG_DIR": str(workdir / "cfg")})


def test_two_clients_with_one_config_dir_do_not_take_over_each_other(tmp_path):
    server, url = start_server(tmp_path)
    procs = [server]
    try:
        a = shared_headless(tmp_path, url, "alpha", "--room", "two")
        procs.append(a)
        a_id = a.wait_for(r"welcome id=(\d+) name=alpha").group(1)
        a.wait_for(r"room two users=1")
        b = shared_headless(tmp_path, url, "beta", "--room", "two")
        procs.append(b)
        b_welcome = b.wait_for(r"welcome id=(\d+) name=(\w+)")
        assert b_welcome.group(2) == "beta" and b_welcome.group(1) != a_id
        b.wait_for(r"room two users=2 \[alpha, beta\]")
        a.wait_for(r"join beta")
        time.sleep(1.0)
        for proc in (a, b):
            assert "reconnecting" not in proc.stdout and "replaced" not in proc.stdout, proc.stdout
        assert b.interrupt() == 0

        a.popen.kill()  # SIGKILL: its lock on the saved token goes with it
        a.wait(10)
        c = shared_headless(tmp_path, url, "gamma", "--room", "two")
        procs.append(c)
        c.wait_for(rf"welcome id={a_id} name=alpha resumed")
        assert c.interrupt() == 0
    finally:
        for proc in procs:
            proc.kill()
