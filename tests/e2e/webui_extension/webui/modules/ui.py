"""``modules.ui``: the refresh button the WebUI puts beside a dropdown."""

from __future__ import annotations

from typing import Any

import gradio as gr


class RefreshButton(gr.Button):
    def refresh(self) -> Any:
        """What a click does: call the refresh method, then compute the component's new arguments."""
        refresh_method, refreshed_args = self.kwargs["refresh_method"], self.kwargs["refreshed_args"]
        refresh_method()
        return refreshed_args() if callable(refreshed_args) else refreshed_args


def create_refresh_button(refresh_component: Any, refresh_method: Any, refreshed_args: Any, elem_id: str) -> Any:
    return RefreshButton(
        elem_id=elem_id,
        refresh_component=refresh_component,
        refresh_method=refresh_method,
        refreshed_args=refreshed_args,
    )
