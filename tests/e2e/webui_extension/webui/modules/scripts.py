"""``modules.scripts``: the base class of WebUI scripts and the runner that holds a tab's scripts."""

from __future__ import annotations

from typing import Any

AlwaysVisible = object()


class Script:
    """A WebUI script; the WebUI sets these attributes when it loads and places it."""

    filename: str | None = None
    args_from: int = 0
    args_to: int = 0
    alwayson: bool = False
    is_txt2img: bool = False
    is_img2img: bool = False
    name: str | None = None

    def title(self) -> str:
        raise NotImplementedError

    def show(self, is_img2img: bool) -> Any:
        return True

    def ui(self, is_img2img: bool) -> list[Any]:
        return []

    def before_process(self, p: Any, *args: Any) -> None:
        pass

    def process(self, p: Any, *args: Any) -> None:
        pass


class ScriptRunner:
    """A tab's scripts, in the order their arguments sit in ``p.script_args``."""

    def __init__(self, scripts: list[Script]) -> None:
        self.scripts = scripts
        self.alwayson_scripts = [s for s in scripts if s.alwayson]
        self.selectable_scripts = [s for s in scripts if not s.alwayson]
