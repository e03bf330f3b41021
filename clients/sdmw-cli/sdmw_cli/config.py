"""Where the CLI finds the API: a config file, overridden by SDMW_URL / SDMW_API_KEY."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sdmw" / "config.json"


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str


def save(url: str, api_key: str, path: Path | None = None) -> Path:
    """Writes the file readable by its owner only, since it holds the API key."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "api_key": api_key}, handle, indent=2)
    os.chmod(path, 0o600)  # the file may have existed with wider rights
    return path


def load(path: Path | None = None) -> Settings:
    path = path or config_path()
    stored = json.loads(path.read_text()) if path.exists() else {}
    return Settings(
        url=os.environ.get("SDMW_URL") or stored.get("url", ""),
        api_key=os.environ.get("SDMW_API_KEY") or stored.get("api_key", ""),
    )
