"""Stand-in for gradio 3.x, as much of it as the WebUI extension touches.

The extension builds its UI with gradio components and wires Python functions
to their events (``button.click(fn, inputs, outputs)``). Nothing is rendered
here: every component created is kept in ``COMPONENTS`` with what it was given,
and every event wiring in ``Component.events``, so the harness can find a
button by its ``elem_id`` and call the function the extension attached to it,
as gradio would when the user clicks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Every component created, in creation order.
COMPONENTS: list[Component] = []
#: Called with each component once it is made: the WebUI hooks component creation this way to run its
#: scripts' ``after_component`` callbacks.
AFTER_CREATE: list[Any] = []


@dataclass
class Event:
    name: str
    fn: Any
    inputs: Any = None
    outputs: Any = None
    js: str | None = None


class Component:
    """Any gradio component or layout block: keeps its arguments and its event wirings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.elem_id = kwargs.get("elem_id")
        self.label = kwargs.get("label")
        self.value = kwargs.get("value", args[0] if args and not callable(args[0]) else None)
        self.parent: Component = _OPEN[-1] if _OPEN else _ROOT
        self.events: list[Event] = []
        self.blocks: dict[int, Component] = {}
        COMPONENTS.append(self)
        for callback in AFTER_CREATE:
            callback(self, **kwargs)

    def _wire(self, name: str, fn: Any = None, inputs: Any = None, outputs: Any = None, **kwargs: Any) -> Event:
        event = Event(name, fn if fn is not None else kwargs.get("fn"), inputs, outputs, kwargs.get("_js"))
        self.events.append(event)
        return event

    def click(self, *args: Any, **kwargs: Any) -> Event:
        return self._wire("click", *args, **kwargs)

    def change(self, *args: Any, **kwargs: Any) -> Event:
        return self._wire("change", *args, **kwargs)

    def select(self, *args: Any, **kwargs: Any) -> Event:
        return self._wire("select", *args, **kwargs)

    def upload(self, *args: Any, **kwargs: Any) -> Event:
        return self._wire("upload", *args, **kwargs)

    def style(self, *args: Any, **kwargs: Any) -> Component:
        return self

    def __enter__(self) -> Component:
        _OPEN.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _OPEN.pop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} elem_id={self.elem_id!r} label={self.label!r}>"


class _Root:
    """What a component outside every layout block sits in: the page (its own parent, so walks up end here)."""

    elem_id = None
    label = None

    @property
    def parent(self) -> _Root:
        return self


_ROOT = _Root()
#: The layout blocks open (``with gr.Row(): ...``): a component is made inside the innermost.
_OPEN: list[Component] = []


def update(**kwargs: Any) -> dict[str, Any]:
    return {"__type__": "update", **kwargs}


def skip() -> dict[str, Any]:
    return update()


class Error(Exception):
    """gradio.Error: raised to show a message in the UI (the extension only ever creates them)."""


class Blocks(Component):
    pass


class Row(Component):
    pass


class Column(Component):
    pass


class Box(Component):
    pass


class Group(Component):
    pass


class Accordion(Component):
    pass


class Tab(Component):
    pass


class Button(Component):
    pass


class UploadButton(Component):
    pass


class Checkbox(Component):
    pass


class Dataframe(Component):
    pass


class File(Component):
    pass


class Gallery(Component):
    pass


class HTML(Component):
    pass


class Image(Component):
    pass


class Label(Component):
    pass


class Textbox(Component):
    pass


class Dropdown(Component):
    @staticmethod
    def update(**kwargs: Any) -> dict[str, Any]:
        return update(**kwargs)


@dataclass
class FileUpload:
    """What gradio hands a function for an uploaded file: a temporary file with its path in ``name``."""

    name: str
    orig_name: str = field(default="")


def find(elem_id: str | None = None, *, label: str | None = None, value: Any = None, kind: type | None = None):
    """The last component created with these attributes (the WebUI builds txt2img's and img2img's UI in turn)."""
    found = [
        c
        for c in COMPONENTS
        if (elem_id is None or c.elem_id == elem_id)
        and (label is None or c.label == label)
        and (value is None or c.value == value)
        and (kind is None or isinstance(c, kind))
    ]
    if not found:
        raise LookupError(f"no component with elem_id={elem_id!r} label={label!r} value={value!r}")
    return found[-1]
