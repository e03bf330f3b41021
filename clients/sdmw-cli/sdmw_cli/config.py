"""Where the CLI finds the API: a config file, overridden by SDMW_URL / SDMW_API_KEY."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sdmw" / "config.json"


#: The project's event bus, which ``sdmw events tail`` and ``sdmw webhooks listen`` follow.
DEFAULT_EVENT_BUS = "sdmw-bus"


class ConfigError(Exception):
    """The config file exists but cannot be read as the CLI wrote it."""


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str
    event_bus: str = ""


def save(url: str, api_key: str, path: Path | None = None, event_bus: str = "") -> Path:
    """Writes the file readable by its owner only, since it holds the API key."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    stored: dict[str, str] = {"url": url, "api_key": api_key}
    if event_bus:
        stored["event_bus"] = event_bus
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle, indent=2)
    os.chmod(path, 0o600)  # the file may have existed with wider rights
    return path


def read_file(path: Path) -> dict[str, str]:
    """The stored settings; {} when there is no file; ConfigError when it is not a JSON object of strings."""
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); fix it, or run `sdmw configure` again") from error
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise ConfigError(f"{path} is not a JSON object of strings; fix it, or run `sdmw configure` again")
    return stored


def load(path: Path | None = None) -> Settings:
    """The settings; the environment (SDMW_URL, SDMW_API_KEY, SDMW_EVENT_BUS) overrides the file."""
    stored = read_file(path or config_path())
    return Settings(
        url=os.environ.get("SDMW_URL") or stored.get("url", ""),
        api_key=os.environ.get("SDMW_API_KEY") or stored.get("api_key", ""),
        event_bus=os.environ.get("SDMW_EVENT_BUS") or stored.get("event_bus", ""),
    )
