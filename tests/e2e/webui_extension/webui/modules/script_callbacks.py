"""``modules.script_callbacks``: where scripts register for the WebUI's UI-building moments."""

from __future__ import annotations

from typing import Any

after_component_callbacks: list[Any] = []
ui_tabs_callbacks: list[Any] = []


def on_after_component(callback: Any) -> None:
    after_component_callbacks.append(callback)


def on_ui_tabs(callback: Any) -> None:
    ui_tabs_callbacks.append(callback)


def ui_tabs_callback() -> list[Any]:
    """Every registered tab: (blocks, title, elem_id) tuples, as the WebUI collects them."""
    tabs: list[Any] = []
    for callback in ui_tabs_callbacks:
        tabs.extend(callback() or [])
    return tabs
