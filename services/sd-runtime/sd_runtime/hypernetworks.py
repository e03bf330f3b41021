"""A1111 hypernetworks, applied to a cached pipeline's attention for one request and removed after it.

A hypernetwork file (``.pt``) is a ``torch.save``d dict. Its integer keys are
context widths (768 for SD 1.x's text context, 320/640/1280 for the UNet's
levels; 1024 for SD 2.x), each holding two state dicts ``[k, v]`` of an
``HypernetworkModule``: ``x + linear(x) * multiplier``, where ``linear`` is a
``Sequential`` of Linear layers, each followed, as the file's metadata says, by
an activation, a LayerNorm and a Dropout (no-op here: inference). Everything
else in the dict is that metadata (``layer_structure``, ``activation_func``,
``is_layer_norm``, ``activate_output``, ``dropout_structure`` or
``use_dropout``/``last_layer_dropout``, and ``name``, ``step``, ... which are
not needed). It is read with ``torch.load(weights_only=True)``: tensors and
plain data only, never arbitrary pickled objects.

Where A1111 applies it: in every attention layer, the context that keys and
values are computed from (the text context in cross-attention, the hidden
states themselves in self-attention) goes through the k-module before
``to_k`` and through the v-module before ``to_v``, when the hypernetwork has
modules for the context's width; queries are unchanged. Several hypernetworks
apply one after the other. A1111 does this in its attention forward, which its
ControlNet extension's models share, so here it is done in the UNet's and the
request's ControlNets' attention layers, by a processor that wraps each
layer's own processor (``HypernetworkAttnProcessor``); the original
processors are put back when the request ends, also when it fails. LoRA
(which patches the Linear layers) and ControlNet work alongside.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sd_runtime.addons import LoadedFile
from sd_runtime.errors import RequestError, is_out_of_memory, load_errors

#: A1111's defaults for what a file does not say (``Hypernetwork.load_state_dict``).
DEFAULT_LAYER_STRUCTURE = (1.0, 2.0, 1.0)
DEFAULT_DROPOUT_P = 0.3

#: Old files name the two Linear layers of a [1, 2, 1] module this way (A1111's ``fix_old_state_dict``).
_OLD_KEYS = {
    "linear1.weight": "linear.0.weight",
    "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight",
    "linear2.bias": "linear.1.bias",
}


@functools.cache
def activations() -> dict[str, type[nn.Module]]:
    """A1111's ``activation_dict``: its named few, and every ``torch.nn`` activation by its lower-case name."""
    found: dict[str, type[nn.Module]] = {
        "linear": nn.Identity,
        "relu": nn.ReLU,
        "leakyrelu": nn.LeakyReLU,
        "elu": nn.ELU,
        "swish": nn.Hardswish,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
    }
    module = nn.modules.activation
    for name in module.__all__:
        cls = getattr(module, name, None)
        if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls is not nn.MultiheadAttention:
            found[name.lower()] = cls
    return found


@dataclass(frozen=True)
class Layout:
    """How a HypernetworkModule's ``linear`` Sequential is built, as A1111 builds it."""

    layer_structure: tuple[float, ...]
    activation: str | None  # None or "linear": no activation modules
    layer_norm: bool
    activate_output: bool
    dropout: tuple[float, ...]  # one per layer_structure entry; > 0 adds a Dropout after that layer

    def build(self, dim: int) -> nn.Sequential:
        ls = self.layer_structure
        layers: list[nn.Module] = []
        for i in range(len(ls) - 1):
            layers.append(nn.Linear(int(dim * ls[i]), int(dim * ls[i + 1])))
            if self.activation not in (None, "linear") and (i < len(ls) - 2 or self.activate_output):
                layers.append(activations()[self.activation]())
            if self.layer_norm:
                layers.append(nn.LayerNorm(int(dim * ls[i + 1])))
            if self.dropout[i + 1] > 0:
                layers.append(nn.Dropout(p=self.dropout[i + 1]))
        return nn.Sequential(*layers)

    def shapes(self, dim: int) -> dict[str, tuple[int, ...]]:
        """The state dict a module of this layout has (``linear.<index>.<name>``), without allocating it."""
        with torch.device("meta"):
            module = HypernetworkModule(self.build(dim))
        return {key: tuple(value.shape) for key, value in module.state_dict().items()}

    def describe(self) -> str:
        on_off = {True: "on", False: "off"}
        return (
            f"layer_structure {[_number(v) for v in self.layer_structure]}, "
            f"activation {self.activation or 'linear'}, layer norm {on_off[self.layer_norm]}, "
            f"activate_output {on_off[self.activate_output]}, dropout {[_number(v) for v in self.dropout]}"
        )


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class HypernetworkModule(nn.Module):
    """``x + linear(x) * multiplier`` (A1111's HypernetworkModule, in eval mode)."""

    def __init__(self, linear: nn.Sequential, multiplier: float = 1.0) -> None:
        super().__init__()
        self.linear = linear
        self.multiplier = multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x) * self.multiplier


@dataclass
class Hypernetwork:
    """One loaded hypernetwork: its (k, v) modules by context width, and the strength this request uses."""

    name: str  # the name the user used (ModelRef.name)
    strength: float
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]]
    layout: Layout

    def to(self, device: Any, dtype: Any) -> Hypernetwork:
        for pair in self.layers.values():
            for module in pair:
                module.to(device=device, dtype=dtype)
        return self


def load_hypernetwork(file: LoadedFile, strength: float) -> Hypernetwork:
    """The hypernetwork in ``file`` (on the CPU, eval mode), its layout checked against its weights."""
    what = f"hypernetwork {file.name}"
    if file.path.is_dir():
        raise RequestError(f"{what} is a folder; a hypernetwork is one A1111 .pt file")
    try:
        data = torch.load(file.path, map_location="cpu", weights_only=True)
    except load_errors() as error:
        if is_out_of_memory(error):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RequestError(
            f"{what} could not be read as an A1111 hypernetwork (a torch.save'd dict of tensors and plain "
            f"data; nothing else is unpickled): {reason}"
        ) from None
    if not isinstance(data, Mapping):
        raise RequestError(f"{what} is not an A1111 hypernetwork: the file holds a {type(data).__name__}, not a dict")
    states = {key: _module_states(what, key, value) for key, value in data.items() if type(key) is int}
    if not states:
        raise RequestError(f"{what} is not an A1111 hypernetwork: it has no layers (no integer context-width keys)")
    layout = _matching_layout(what, _layouts(what, data), states)
    layers = {}
    for dim, (k_state, v_state) in sorted(states.items()):
        layers[dim] = (_module(layout, dim, k_state, strength), _module(layout, dim, v_state, strength))
    return Hypernetwork(name=file.name, strength=strength, layers=layers, layout=layout)


def _module_states(what: str, dim: int, value: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    if dim <= 0:
        raise RequestError(f"{what} has layers for context width {dim}, which is not a width")
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(isinstance(v, Mapping) for v in value):
        raise RequestError(f"{what}: its layers for width {dim} are not a pair of state dicts [k, v]")
    pair = []
    for state in value:
        renamed = {_OLD_KEYS.get(str(key), str(key)): tensor for key, tensor in state.items()}
        bad = [key for key, tensor in renamed.items() if not isinstance(tensor, torch.Tensor)]
        if bad:
            raise RequestError(f"{what}: its layers for width {dim} hold {bad[0]!r}, which is not a tensor")
        pair.append(renamed)
    return pair[0], pair[1]


def _layouts(what: str, meta: Mapping[Any, Any]) -> list[Layout]:
    """The layouts the metadata allows, the one A1111 builds first.

    A1111 reads a missing ``activate_output`` as on and a missing ``last_layer_dropout`` as off; files
    written before those keys existed may have been trained the other way, which their weights then tell
    (a LayerNorm or Dropout after an extra activation moves the indices), so the other reading is tried too.
    """
    structure = meta.get("layer_structure")
    structure = DEFAULT_LAYER_STRUCTURE if structure is None else structure
    if (
        not isinstance(structure, list | tuple)
        or len(structure) < 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in structure)
        or structure[0] != 1
        or structure[-1] != 1
    ):
        raise RequestError(
            f"{what}: layer_structure {structure!r} is not a list of positive numbers starting and ending with 1"
        )
    structure = tuple(float(v) for v in structure)
    activation = meta.get("activation_func")
    if activation is not None:
        if not isinstance(activation, str) or activation.lower() not in activations():
            raise RequestError(f"{what} uses activation function {activation!r}, which A1111 does not have")
        activation = activation.lower()
        try:
            activations()[activation]()
        except TypeError:
            raise RequestError(f"{what} uses activation function {activation!r}, which needs arguments") from None
    layer_norm = bool(meta.get("is_layer_norm", False))
    outputs = [bool(meta["activate_output"])] if "activate_output" in meta else [True, False]
    dropouts: list[tuple[float, ...]] = []
    declared = meta.get("dropout_structure")
    if declared is not None:
        if (
            not isinstance(declared, list | tuple)
            or len(declared) != len(structure)
            or not all(isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p < 1 for p in declared)
        ):
            raise RequestError(
                f"{what}: dropout_structure {declared!r} is not one probability in [0, 1) per layer_structure entry"
            )
        dropouts.append(tuple(float(p) for p in declared))
    else:
        use_dropout = bool(meta.get("use_dropout", False))
        last = [bool(meta["last_layer_dropout"])] if "last_layer_dropout" in meta else [False, True]
        for last_layer_dropout in last:
            dropout = _dropout_structure(len(structure), use_dropout, last_layer_dropout)
            if dropout not in dropouts:
                dropouts.append(dropout)
    return [Layout(structure, activation, layer_norm, out, dropout) for out in outputs for dropout in dropouts]


def _dropout_structure(length: int, use_dropout: bool, last_layer_dropout: bool) -> tuple[float, ...]:
    """A1111's ``parse_dropout_structure``: no dropout after the first entry or the output."""
    if not use_dropout:
        return (0.0,) * length
    middle = (DEFAULT_DROPOUT_P,) * (length - 3)
    return (0.0, *middle, DEFAULT_DROPOUT_P if last_layer_dropout else 0.0, 0.0)[:length]


def _matching_layout(
    what: str, layouts: list[Layout], states: dict[int, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]
) -> Layout:
    first_problem = ""
    for layout in layouts:
        problem = ""
        for dim, pair in sorted(states.items()):
            expected = layout.shapes(dim)
            for side, state in zip("kv", pair, strict=True):
                problem = _difference(expected, state)
                if problem:
                    problem = f"its {side}-module for width {dim} {problem}"
                    break
            if problem:
                break
        if not problem:
            return layout
        first_problem = first_problem or problem
    raise RequestError(
        f"{what}: its weights do not match the layout it declares ({layouts[0].describe()}): {first_problem}"
    )


def _difference(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> str:
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:4])}" + (" ..." if len(missing) > 4 else ""))
        if unexpected:
            parts.append(f"has {', '.join(unexpected[:4])}" + (" ..." if len(unexpected) > 4 else "") + " besides")
        return " and ".join(parts)
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            return f"has {key} of shape {list(state[key].shape)} where the layout needs {list(shape)}"
    return ""


def _module(layout: Layout, dim: int, state: dict[str, torch.Tensor], strength: float) -> HypernetworkModule:
    with torch.device("meta"):
        module = HypernetworkModule(layout.build(dim), multiplier=strength)
    module.load_state_dict({key: tensor.float() for key, tensor in state.items()}, strict=True, assign=True)
    module.eval()
    module.requires_grad_(False)
    return module


# ------------------------------------------------------------------ applying


def attention_dims(model: Any) -> set[int]:
    """The context widths of ``model``'s attention layers (what their ``to_k``/``to_v`` take)."""
    dims = set()
    for module in model.modules():
        if hasattr(module, "set_processor") and hasattr(module, "to_k"):
            dim = getattr(module, "cross_attention_dim", None) or getattr(module.to_k, "in_features", None)
            if dim:
                dims.add(int(dim))
    return dims


def check_fit(hypernetworks: list[Hypernetwork], unet: Any) -> None:
    """Refuses a hypernetwork that has no layers for any of the checkpoint's attention widths."""
    dims = attention_dims(unet)
    for hypernetwork in hypernetworks:
        if not dims & set(hypernetwork.layers):
            raise RequestError(
                f"hypernetwork {hypernetwork.name} does not fit this checkpoint: it has layers for context widths "
                f"{sorted(hypernetwork.layers)}, and the checkpoint's attention layers take {sorted(dims)}"
            )


def _through(hypernetworks: list[Hypernetwork], context: torch.Tensor, side: int) -> torch.Tensor:
    for hypernetwork in hypernetworks:
        pair = hypernetwork.layers.get(context.shape[-1])
        if pair is not None:
            context = pair[side](context)
    return context


class _HypernetAttention:
    """An attention layer as the wrapped processor sees it: ``to_k`` and ``to_v`` first pass their input
    (the keys' and values' context) through the hypernetworks; everything else is the layer's own."""

    def __init__(self, attn: Any, hypernetworks: list[Hypernetwork]) -> None:
        self._attn = attn
        self._hypernetworks = hypernetworks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._attn, name)

    def to_k(self, context: torch.Tensor) -> torch.Tensor:
        return self._attn.to_k(_through(self._hypernetworks, context, 0))

    def to_v(self, context: torch.Tensor) -> torch.Tensor:
        return self._attn.to_v(_through(self._hypernetworks, context, 1))


class HypernetworkAttnProcessor:
    """Wraps an attention processor (the pipeline's ``AttnProcessor2_0``) so that keys and values are
    computed from the hypernetworks' output, as A1111's attention does; queries are untouched."""

    def __init__(self, inner: Any, hypernetworks: list[Hypernetwork]) -> None:
        self.inner = inner
        self.hypernetworks = hypernetworks

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        proxy = _HypernetAttention(attn, self.hypernetworks)
        return self.inner(proxy, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)


@contextmanager
def hypernetworks_applied(models: list[Any], hypernetworks: list[Hypernetwork]) -> Iterator[None]:
    """Every attention layer of ``models`` (the UNet, and the request's ControlNets) runs through
    ``hypernetworks`` for the ``with`` block; their own processors are put back afterwards."""
    if not hypernetworks:
        yield
        return
    unique = list({id(model): model for model in models}.values())  # a ControlNet used by two units: once
    saved: list[tuple[Any, dict[str, Any]]] = []
    try:
        for model in unique:
            originals = model.attn_processors
            saved.append((model, originals))
            model.set_attn_processor(
                {name: HypernetworkAttnProcessor(processor, hypernetworks) for name, processor in originals.items()}
            )
        yield
    finally:
        for model, originals in reversed(saved):
            model.set_attn_processor(dict(originals))  # set_attn_processor empties the dict it is given
