"""Resume tokens, one per server, in the user's config dir (tokens.json, readable by the user only)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from platformdirs import user_config_dir

log = logging.getLogger(__name__)

APP_NAME = "pianorhythm-tui"
FILE_NAME = "tokens.json"


class TokenStore:
    """Maps a server URL to the resume token it last gave us. `directory` overrides the config dir."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(directory if directory is not None else user_config_dir(APP_NAME)) / FILE_NAME

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable token file %s: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def get(self, server: str) -> str:
        return self._load().get(server, "")

    def set(self, server: str, token: str) -> None:
        data = self._load()
        if data.get(server) == token:
            return
        data[server] = token
        self._write(data)

    def forget(self, server: str) -> None:
        data = self._load()
        if data.pop(server, None) is not None:
            self._write(data)

    def _write(self, data: dict[str, str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the resume token to %s: %s", self.path, exc)
