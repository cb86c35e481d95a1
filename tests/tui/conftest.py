"""Every client test gets a config directory of its own, so none reads or writes the user's settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    directory = tmp_path / "config"
    monkeypatch.setenv("PIANORHYTHM_CONFIG_DIR", str(directory))
    return directory
