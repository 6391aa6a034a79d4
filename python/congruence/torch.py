r"""Activations of PyTorch and Hugging Face models: :func:`extract`.

:func:`extract` runs a model over a dataset once and returns, for every requested layer, one
float32 matrix ``(rows, features)``: the layer's output captured by a forward hook, pooled by
a policy of :func:`congruence.pool` when it is 3-D ``(n, tokens, d)`` or 4-D
``(n, c, h, w)``. The same machinery drives :func:`congruence.compare_models`, which feeds the
activations to an accumulator batch by batch instead of keeping them.

PyTorch is imported when a function here is first called, never by ``import congruence``;
install it with ``pip install "congruence[torch]"``.

Guarantees
----------
* The model runs in eval mode under ``torch.inference_mode()``; afterwards every module's
  training flag is what it was and every hook is removed, also when an exception or
  ``KeyboardInterrupt`` (Ctrl-C) stops the loop.
* Activations are detached, moved to the CPU and upcast (float16 and bfloat16 to float32) as
  they arrive; each is pooled at once, so a batch's unpooled activations are never all held
  (``"mean"`` and ``"max"`` of floating tensors in torch, the means summed in float64).
* A 3-D or 4-D activation without ``pooling`` fails during the first forward pass, with the
  list of policies; a module that runs several times in one forward pass fails (naming it)
  unless ``reuse`` says which call to keep.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from congruence import _core
from congruence._memory import check_fits, mapped_array
from congruence._progress import Progress
from congruence._validation import _to_numpy, check_bool, check_choice, check_number
from congruence.errors import LayerNotFoundError
from congruence.pooling import POLICIES_3D, POLICIES_4D, _check_mask, policies_text, pool
from congruence.results import find_layer, layer_not_found

__all__ = ["extract"]

#: forward batch size when ``data`` is one tensor or array
DEFAULT_BATCH_SIZE = 256
_HIDDEN = "hidden_states"
_REUSE = ("first", "last", "stack")


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            "congruence.torch needs PyTorch, which is not installed: "
            'pip install "congruence[torch]"'
        ) from None
    return torch


# ------------------------------------------------------------------------------ layer names


def _glob_regex(pattern: str) -> "re.Pattern[str]":
    """A module-name glob: ``*`` and ``?`` stay within one dotted component, ``**`` crosses
    dots, ``[...]`` is a character class (``[!...]`` its complement)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[" and "]" in pattern[i + 2 :]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1 : j]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _resolve(model: Any, layers: Any, where: str) -> list[Any]:
    """The layer entries of ``model``: ``(label, module)`` pairs, and ``_HIDDEN`` for the
    hidden states of a Hugging Face model (expanded after the first forward pass)."""
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{where} must be a torch.nn.Module; got {type(model).__name__}")
    named = list(model.named_modules())
    by_name = dict(named)
    names = [n for n, _ in named if n]
    if isinstance(layers, (str, torch.nn.Module)):
        items = [layers]
    elif isinstance(layers, (list, tuple)):
        items = list(layers)
    else:
        raise ValueError(
            f"the layers of {where} must be a module name, a glob pattern, a module, "
            f"'hidden_states', or a list of these; got {type(layers).__name__}"
        )
    if not items:
        raise ValueError(f"no layers were given for {where}")
    entries: list[Any] = []
    seen: set = set()

    def add(entry: Any) -> None:
        key = entry if entry == _HIDDEN else entry[0]
        if key not in seen:
            seen.add(key)
            entries.append(entry)

    for item in items:
        if isinstance(item, str):
            if item in by_name:
                add((item, by_name[item]))
            elif item == _HIDDEN:
                add(_HIDDEN)
            elif any(ch in item for ch in "*?["):
                rx = _glob_regex(item)
                hits = [(n, m) for n, m in named if n and rx.match(n)]
                if not hits:
                    raise LayerNotFoundError(
                        f"the pattern {item!r} matches no module of {where} ('*' stays within "
                        f"one dotted name, '**' crosses dots); "
                        + str(
                            layer_not_found(item.replace("*", ""), names, where, kind="module")
                        ).split("; ", 1)[1]
                    )
                for hit in hits:
                    add(hit)
            else:
                raise layer_not_found(item, names, where, kind="module")
        elif isinstance(item, torch.nn.Module):
            name = next((n for n, m in named if m is item), None)
            if name is None:
                raise LayerNotFoundError(
                    f"the {type(item).__name__} module given in the layers of {where} is not "
                    "one of its submodules; pass a module of that model or its name"
                )
            add((name, item))
        else:
            raise ValueError(
                f"a layer of {where} must be a module name (str) or a torch.nn.Module; got "
                f"{type(item).__name__}"
            )
    return entries


def _labels(entries: Sequence[Any], n_hidden: int) -> list[str]:
    out: list[str] = []
    for e in entries:
        if e == _HIDDEN:
            out.extend(f"{_HIDDEN}.{i}" for i in range(n_hidden))
        else:
            out.append(e[0])
    return out


# ------------------------------------------------------------------------------ one model


def _select(out: Any, output: Any, label: str, torch: Any) -> Any:
    """The tensor of a module's output that ``output`` picks (see :func:`extract`)."""
    if callable(output):
        picked = output(out)
    elif isinstance(out, torch.Tensor):
        picked = out
    elif output is None:
        if isinstance(out, (tuple, list)) and out:
            picked = out[0]
        elif hasattr(out, "to_tuple") and out.to_tuple():  # a transformers ModelOutput
            picked = out.to_tuple()[0]
        elif isinstance(out, Mapping):
            raise ValueError(
                f"layer {label!r} returns a dict with keys {list(out)}; pass output=<key> "
                "(or an index or a function) to pick the activation"
            )
        else:
            picked = out
    elif isinstance(output, int) and not isinstance(output, bool):
        try:
            items = out.to_tuple() if hasattr(out, "to_tuple") else out
            picked = items[output]
        except (IndexError, TypeError, KeyError):
            n = len(out) if hasattr(out, "__len__") else "no"
            raise ValueError(
                f"output={output} picks an item of a tuple or ModelOutput, but layer {label!r} "
                f"returns a {type(out).__name__} with {n} item(s)"
            ) from None
    elif isinstance(output, str):
        if not isinstance(out, Mapping) or output not in out or out[output] is None:
            keys = list(out) if isinstance(out, Mapping) else None
            raise ValueError(
                f"output={output!r} picks a key of a dict or ModelOutput, but layer {label!r} "
                + (
                    f"returns one with keys {keys}"
                    if keys is not None
                    else f"returns a {type(out).__name__}"
                )
            )
        picked = out[output]
    else:
        raise ValueError(
            f"output={output!r} is invalid; expected None, an index (int), a key (str) or a "
            "function of the module's output"
        )
    if not isinstance(picked, torch.Tensor):
        raise ValueError(
            f"layer {label!r} gives a {type(picked).__name__}, not a tensor; pass output= (an "
            "index, a key or a function) to pick the activation tensor"
        )
    return picked


def _pool_tensor(
    t: Any,
    policy: Optional[str],
    mask: Any,
    name: str,
    torch: Any,
    buffer: Optional[Callable[[int, int], tuple]] = None,
) -> Any:
    r"""The torch twin of :func:`congruence.pool` for the common cases, or ``None``.

    For a floating tensor on a real device: 1-D ``(n,)`` and 2-D ``(n, p)`` activations are
    copied; 4-D ``"mean"`` and 3-D ``"mean"`` / ``"max"`` (mask included) are computed in
    torch, the means summed in float64 and divided by the count as :func:`congruence.pool`
    does, then cast to float32. Returns a float32 CPU tensor of its own memory. Everything
    else (other dtypes and policies, empty tensors, errors) returns ``None`` and takes the
    NumPy path. The 4-D mean of a contiguous float32 CPU tensor (the common case) takes one
    pass in the Rust core (float64 sums of each channel, rounded once) instead of torch's
    float64 copy of the whole activation.

    Both paths give the float32 of the same float64 mean; they may differ only when float64
    round-off of a differently ordered sum crosses a float32 rounding boundary (one unit in
    the last place, in rare entries).

    With ``buffer``, a function ``buffer(rows, cols) -> (array, tensor)`` giving a float32
    C-ordered ``(rows, cols)`` array and a tensor sharing its memory, the result is written
    there and the array returned (the same values): a caller that consumes each batch's
    activations before the next forward pass reuses one buffer per layer, so no allocation
    made during a forward pass outlives it (long-lived ones, interleaved with the model's
    large activations, fragment the heap: glibc then grows and trims it on every batch).
    """
    if not t.is_floating_point() or t.is_complex() or t.device.type == "meta" or not t.numel():
        return None
    f32, f64 = torch.float32, torch.float64
    if t.dim() in (1, 2):
        # a copy: the model may still change its output in place (ReLU(inplace=True))
        flat = t.reshape(t.shape[0], -1)
        if buffer is not None:
            array, view = buffer(flat.shape[0], flat.shape[1])
            if flat.dtype == f32 and flat.device.type == "cpu" and not flat.is_neg():
                np.copyto(array, flat.numpy())  # NumPy's copy: no dispatch, no thread team
            else:
                view.copy_(flat)
            return array
        return flat.to(device="cpu", dtype=f32, copy=True, memory_format=torch.contiguous_format)
    if t.dim() == 4 and policy == "mean":
        n, c, h, w = t.shape
        if t.dtype == f32 and t.device.type == "cpu" and t.is_contiguous():
            means = _core.row_means_f32(t.view(n * c, h * w).numpy()).reshape(n, c)
            if buffer is not None:
                array = buffer(n, c)[0]
                array[...] = means
                return array
            return torch.from_numpy(means)
        if t.is_contiguous():  # one contiguous run per channel: the faster reduction
            out = torch.sum(t.view(n, c, h * w), dim=2, dtype=f64).div_(h * w)
        else:
            out = torch.sum(t, dim=(2, 3), dtype=f64).div_(h * w)
    elif t.dim() == 3 and policy in ("mean", "max"):
        m = None
        if mask is not None:
            m = _check_mask(mask, tuple(t.shape), name, "mask")
            m = None if m.all() else torch.from_numpy(m).to(t.device)
        if policy == "mean":
            if m is None:
                out = torch.sum(t, dim=1, dtype=f64).div_(t.shape[1])
            else:
                total = torch.sum(t.to(f64) * m[:, :, None], dim=1)
                out = total / m.sum(dim=1, dtype=f64)[:, None]
        elif m is None:
            out = t.amax(dim=1)
        else:
            out = torch.where(m[:, :, None], t, float("-inf")).amax(dim=1)
    else:
        return None
    if buffer is not None:
        array, view = buffer(out.shape[0], out.shape[1])
        view.copy_(out)
        return array
    return out.to(device="cpu", dtype=f32).contiguous()


def _as_array(x: Any) -> np.ndarray:
    """A pooled activation as a NumPy array (a tensor of :func:`_pool_tensor` is shared)."""
    return x if isinstance(x, np.ndarray) else x.numpy()


class _Tap:
    """The hooks on one model, and the pooled activations of the current forward pass."""

    def __init__(self, model, entries, where, *, output, reuse, pooling, device):
        torch = _torch()
        self.torch = torch
        self.model = model
        self.entries = entries
        self.where = where
        self.output = output
        self.reuse = reuse
        self.pooling = pooling
        self.hidden = _HIDDEN in entries
        self.n_hidden: Optional[int] = None
        self.handles: list[Any] = []
        self.flags: list[tuple[Any, bool]] = []
        self.mask: Optional[np.ndarray] = None
        #: pooled activations go into per-layer buffers kept from batch to batch (see
        #: _pool_tensor): only for a consumer that copies each batch before the next one
        self.recycle = False
        self.buffers: dict[tuple[str, int], tuple[np.ndarray, Any]] = {}
        self.store: dict[str, list[Any]] = {}
        self.calls: dict[str, int] = {}
        self.first_calls: dict[str, int] = {}
        self.widths: dict[str, int] = {}
        tensors = list(itertools.chain(model.parameters(), model.buffers()))
        if any(t.device.type == "meta" for t in tensors):
            raise ValueError(
                f"{where} has parameters on the 'meta' device, which holds shapes but no "
                "values (e.g. a model built under init_empty_weights or with device='meta'); "
                "load its weights on a real device first, e.g. model.to_empty(device='cpu') "
                "then model.load_state_dict(...)"
            )
        if device is None:
            self.device = tensors[0].device if tensors else torch.device("cpu")
        else:
            self.device = torch.device(device)
            if self.device.type == "meta":
                raise ValueError(
                    "device='meta' holds shapes but no values, so there are no activations to "
                    "compare; pass a real device (e.g. 'cpu' or 'cuda')"
                )
        floats = [t.dtype for t in tensors if t.is_floating_point()]
        self.dtype = floats[0] if floats else torch.float32

    # -- life cycle
    def install(self) -> None:
        self.flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        for e in self.entries:
            if e != _HIDDEN:
                self.handles.append(e[1].register_forward_hook(self._hook(e[0])))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        for m, flag in self.flags:
            m.training = flag
        self.flags = []

    # -- activations
    def _policy(self, label: str) -> Optional[str]:
        if isinstance(self.pooling, Mapping):
            return self.pooling.get(label)
        return self.pooling

    def _buffer(self, key: tuple[str, int]) -> Callable[[int, int], tuple]:
        """``buffer(rows, cols)`` for :func:`_pool_tensor`: the kept buffer of ``key`` (a
        label and a call of its module), grown when a batch has more rows than any before."""

        def buffer(rows: int, cols: int) -> tuple:
            kept = self.buffers.get(key)
            if kept is None or kept[0].shape[0] < rows or kept[0].shape[1] != cols:
                array = mapped_array(rows, cols, np.float32)
                kept = (array, self.torch.from_numpy(array))
                self.buffers[key] = kept
            if kept[0].shape[0] == rows:
                return kept
            return kept[0][:rows], kept[1][:rows]

        return buffer

    def convert(self, label: str, t: Any, call: int = 1) -> Any:
        """Tensor -> pooled float32 (rows, features) array owned by us (with ``recycle``, a
        view of this layer's kept buffer, valid until the next batch).

        Floating tensors that :func:`_pool_tensor` handles stay in torch (a float32 CPU
        tensor, turned into an array by :func:`_as_array` after the forward pass, so no NumPy
        work runs between the model's operations); the rest go through :func:`congruence.pool`.
        """
        policy = self._policy(label)
        name = f"layer {label!r} of {self.where}"
        buffer = self._buffer((label, call)) if self.recycle else None
        fast = _pool_tensor(t.detach(), policy, self.mask, name, self.torch, buffer)
        if fast is not None:
            return fast
        base = _to_numpy(t.detach(), name)
        a = base
        if a.ndim == 0:
            raise ValueError(
                f"layer {label!r} of {self.where} gives a scalar (shape ()), not one "
                "activation per input; pick another layer or pass output="
            )
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        elif a.ndim > 2:
            if policy is None:
                keyed = (
                    f" (pooling= has no key {label!r}; its keys are {list(self.pooling)})"
                    if isinstance(self.pooling, Mapping)
                    else ""
                )
                raise ValueError(
                    f"layer {label!r} of {self.where} gives activations of shape "
                    f"{tuple(a.shape)} ({a.ndim}-D); pass pooling= a policy ({policies_text()}), "
                    f"or a dict of layer name to policy{keyed}"
                )
            mask = self.mask if a.ndim == 3 else None
            a = pool(a, policy, mask, name=name)
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            a = np.ascontiguousarray(a, dtype=np.float32)
        if np.may_share_memory(a, base):
            a = a.copy()  # the model may still change its output in place (ReLU(inplace=True))
        return a

    def _hook(self, label: str) -> Callable:
        def hook(module: Any, inputs: Any, out: Any) -> None:
            k = self.calls.get(label, 0) + 1
            self.calls[label] = k
            if k > 1:
                if self.reuse is None:
                    raise ValueError(
                        f"module {label!r} of {self.where} ran {k} times in one forward pass "
                        "(it is reused); pass reuse='first' or 'last' to keep one call's "
                        "activations, or reuse='stack' to place every call's side by side"
                    )
                if self.reuse == "first":
                    return None
            a = self.convert(label, _select(out, self.output, label, self.torch), k)
            if self.reuse == "stack" and k > 1:
                self.store[label].append(a)
            else:
                self.store[label] = [a]
            return None

        return hook

    def move(self, obj: Any) -> Any:
        torch = self.torch
        if isinstance(obj, torch.Tensor):
            if obj.device.type == "meta":
                raise ValueError(
                    "a batch of the data is on the 'meta' device (shapes without values); "
                    "pass real tensors"
                )
            return obj.to(self.device)
        if isinstance(obj, np.ndarray):
            t = torch.as_tensor(obj)
            if t.is_floating_point():
                t = t.to(self.dtype)
            return t.to(self.device)
        if isinstance(obj, Mapping):
            return {k: self.move(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return (
                type(obj)(self.move(v) for v in obj)
                if isinstance(obj, tuple)
                else [self.move(v) for v in obj]
            )
        return obj

    def forward(self, args: tuple, kwargs: dict, mask: Optional[np.ndarray]) -> dict:
        """Run one batch; the pooled activations of every layer, in layer order."""
        torch = self.torch
        self.mask = mask
        self.store = {}
        self.calls = {}
        args, kwargs = self.move(args), self.move(kwargs)
        if self.hidden:
            kwargs = dict(kwargs, output_hidden_states=True)
        with torch.inference_mode():
            try:
                out = self.model(*args, **kwargs)
            except TypeError as exc:
                if self.hidden and "output_hidden_states" in str(exc):
                    raise ValueError(
                        f"layers='hidden_states' calls the model with output_hidden_states=True, "
                        f"which {self.where} does not accept ({exc}); it is for Hugging Face "
                        "models: name the modules whose outputs you want instead"
                    ) from None
                raise
        result: dict[str, np.ndarray] = {}
        hidden: list[np.ndarray] = []
        if self.hidden:
            hs = getattr(out, _HIDDEN, None)
            if hs is None and isinstance(out, Mapping):
                hs = out.get(_HIDDEN)
            if not hs:
                raise ValueError(
                    f"layers='hidden_states' needs a model that returns hidden_states when "
                    f"called with output_hidden_states=True (a Hugging Face model); "
                    f"{self.where} returned a {type(out).__name__} without them"
                )
            if self.n_hidden is None:
                self.n_hidden = len(hs)
            hidden = [_as_array(self.convert(f"{_HIDDEN}.{i}", h)) for i, h in enumerate(hs)]
        for e in self.entries:
            if e == _HIDDEN:
                for i, a in enumerate(hidden):
                    result[f"{_HIDDEN}.{i}"] = a
                continue
            label = e[0]
            if label not in self.store:
                raise ValueError(
                    f"module {label!r} of {self.where} did not run in the forward pass, so it "
                    "has no activations; pick a module that the model's forward uses"
                )
            parts = [_as_array(p) for p in self.store[label]]
            k = self.calls[label]
            first = self.first_calls.setdefault(label, k)
            if self.reuse == "stack" and k != first:
                raise ValueError(
                    f"module {label!r} of {self.where} ran {k} times in this forward pass but "
                    f"{first} times in the first one; reuse='stack' needs the same count"
                )
            if len(parts) > 1:
                rows = {p.shape[0] for p in parts}
                if len(rows) > 1:
                    raise ValueError(
                        f"the calls of module {label!r} of {self.where} give different row "
                        f"counts {[p.shape[0] for p in parts]}; reuse='stack' needs equal rows"
                    )
                result[label] = np.concatenate(parts, axis=1)
            else:
                result[label] = parts[0]
        self.store = {}
        for label, a in result.items():
            w = self.widths.setdefault(label, a.shape[1])
            if a.shape[1] != w:
                raise ValueError(
                    f"layer {label!r} of {self.where} gives {a.shape[1]} features in this "
                    f"batch but {w} in the first one (e.g. pooling='flatten' over inputs of "
                    "different lengths); use a policy whose width does not depend on the input"
                )
        return result


# ------------------------------------------------------------------------------ data


def _is_tensor(x: Any, torch: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


def _batches(data: Any, batch_size: int, torch: Any) -> Iterable[Any]:
    if _is_tensor(data, torch):
        for s in range(0, len(data), batch_size):
            yield data[s : s + batch_size]
        return
    if isinstance(data, (str, bytes, Mapping)) or not hasattr(data, "__iter__"):
        raise ValueError(
            "data must be a DataLoader or an iterable of batches (tensors, (input, ...) "
            "tuples, or dicts of model keyword arguments), or one tensor batched with "
            f"batch_size; got {type(data).__name__}"
        )
    yield from data


def _total(data: Any, torch: Any) -> Optional[int]:
    """The number of inputs ``data`` will give, when it tells."""
    if _is_tensor(data, torch):
        return len(data)
    dataset = getattr(data, "dataset", None)
    bs = getattr(data, "batch_size", None)
    if dataset is not None and bs is not None:
        try:
            return min(len(dataset), len(data) * bs)
        except TypeError:
            return None
    return None


def _call(batch: Any, input_fn: Optional[Callable]) -> tuple[tuple, dict, Any]:
    """``(args, kwargs, mask source)`` of the model call for one batch."""
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    if input_fn is not None:
        x = input_fn(batch)
        if isinstance(x, Mapping):
            return (), dict(x), x.get("attention_mask", mask)
        if isinstance(x, tuple):
            return x, {}, mask
        return (x,), {}, mask
    if isinstance(batch, Mapping):
        return (), dict(batch), mask
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError("a batch of the data is an empty tuple; expected (input, ...)")
        first = batch[0]
        if isinstance(first, Mapping):
            return (), dict(first), first.get("attention_mask")
        return (first,), {}, None
    return (batch,), {}, None


def _first_len(obj: Any, torch: Any) -> Optional[int]:
    if _is_tensor(obj, torch):
        return int(obj.shape[0]) if obj.ndim else None
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        for v in obj:
            n = _first_len(v, torch)
            if n is not None:
                return n
    return None


def _take(obj: Any, m: int, k: int, torch: Any) -> Any:
    """The first ``k`` of the ``m`` inputs of a batch (tensors sliced along dim 0)."""
    if _is_tensor(obj, torch):
        return obj[:k] if obj.ndim and obj.shape[0] == m else obj
    if isinstance(obj, Mapping):
        return {key: _take(v, m, k, torch) for key, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_take(v, m, k, torch) for v in obj)
    if isinstance(obj, list):
        return [_take(v, m, k, torch) for v in obj]
    return obj


def _mask_array(mask: Any) -> Optional[np.ndarray]:
    if mask is None:
        return None
    return np.asarray(
        _to_numpy(mask.detach() if hasattr(mask, "detach") else mask, "attention_mask")
    )


def _check_rows(results: Sequence[tuple[str, dict]], pooling: Any, inputs: int) -> int:
    """Every layer of every model must give the same number of rows for a batch: one per
    input (``inputs``, the batch's first dimension), except under the row policies."""
    first = None
    for where, res in results:
        for label, a in res.items():
            policy = pooling.get(label) if isinstance(pooling, Mapping) else pooling
            if policy not in ("tokens", "spatial") and a.shape[0] != inputs:
                raise ValueError(
                    f"layer {label!r} of {where} gives {a.shape[0]} rows for a batch of "
                    f"{inputs} inputs (the first dimension of the batch); expected one row per "
                    "input. Is the data a sequence of single samples without a batch "
                    "dimension (e.g. a DataLoader with batch_size=None)? Pass batches, or one "
                    "tensor of all inputs with batch_size="
                )
            if first is None:
                first = (where, label, a.shape[0])
            elif a.shape[0] != first[2]:
                why = (
                    " ('tokens' and 'spatial' give one row per unmasked token or position: "
                    "every layer must then have the same tokens or positions, and none may be "
                    "2-D)"
                    if _row_policies(pooling)
                    else ""
                )
                raise ValueError(
                    f"layer {label!r} of {where} gives {a.shape[0]} rows for this batch but "
                    f"layer {first[1]!r} of {first[0]} gives {first[2]}; rows must be the same "
                    f"inputs in every layer{why}"
                )
    return 0 if first is None else first[2]


def _row_policies(pooling: Any) -> bool:
    vals = pooling.values() if isinstance(pooling, Mapping) else [pooling]
    return any(v in ("tokens", "spatial") for v in vals)


def _check_options(pooling, output, reuse, batch_size, max_rows, progress, out) -> tuple:
    valid = set(POLICIES_3D) | set(POLICIES_4D)
    pols = pooling.values() if isinstance(pooling, Mapping) else [pooling]
    for p in pols:
        if p is not None and (not isinstance(p, str) or p not in valid):
            raise ValueError(
                f"pooling={p!r} is invalid; expected None or one of: {policies_text()}"
            )
    if reuse is not None:
        check_choice("reuse", reuse, _REUSE)
    batch_size = check_number("batch_size", batch_size, low=1, integer=True)
    if max_rows is not None:
        max_rows = check_number("max_rows", max_rows, low=1, integer=True)
    progress = check_bool("progress", progress)
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"out must be a directory path; got {type(out).__name__}")
    return batch_size, max_rows, progress


class _Session:
    """Hooks installed and eval mode on entry; hooks removed and flags restored on exit."""

    def __init__(self, taps: Sequence[_Tap]):
        self.taps = taps

    def __enter__(self) -> "_Session":
        try:
            for t in self.taps:
                t.install()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for t in self.taps:
            t.remove()


_BLAS: list = []


def _one_blas_thread():
    """A context in which the BLAS libraries loaded in this process use one thread.

    The library scan of threadpoolctl (milliseconds, with torch's many libraries loaded) runs
    once; the BLAS that the per-batch products use is NumPy's, loaded before torch."""
    from threadpoolctl import ThreadpoolController

    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _drive(
    taps: Sequence[_Tap],
    data: Any,
    consume: Callable[[list[dict], int, Optional[int]], None],
    *,
    input_fn: Optional[Callable],
    batch_size: int,
    max_rows: Optional[int],
    progress: bool,
    pooling: Any,
) -> int:
    """Run every model over the batches of ``data``; ``consume(results, inputs, total)`` gets
    the pooled activations of each batch (one dict per model), the batch's number of inputs and
    the total number of inputs when known. Returns the number of inputs."""
    torch = _torch()
    total = _total(data, torch)
    if max_rows is not None:
        total = max_rows if total is None else min(total, max_rows)
    done = 0
    # NumPy's BLAS threads and torch's OpenMP threads both busy-wait between calls; taking
    # turns batch after batch, each side's spinning starves the other (measured: the forward
    # passes ran 5-7x slower). The per-batch products here are small, so NumPy's BLAS runs on
    # one thread during the loop (restored afterwards), leaving the cores to torch.
    with _Session(taps), Progress(progress, total, unit="input") as bar, _one_blas_thread():
        for batch in _batches(data, batch_size, torch):
            args, kwargs, mask = _call(batch, input_fn)
            m = _first_len(mask, torch) if mask is not None else _first_len((args, kwargs), torch)
            if m is None:
                raise ValueError(
                    "could not find the inputs of a batch: no tensor among the model's "
                    "arguments; pass data as tensors, (input, ...) tuples or dicts of tensors, "
                    "or input_fn= returning them"
                )
            if max_rows is not None and done + m > max_rows:
                k = max_rows - done
                args, kwargs, mask = (_take(x, m, k, torch) for x in (args, kwargs, mask))
                m = k
            mask_np = _mask_array(mask)
            results = [t.forward(args, kwargs, mask_np) for t in taps]
            _check_rows([(t.where, r) for t, r in zip(taps, results)], pooling, m)
            consume(results, m, total)
            done += m
            bar.update(m)
            if max_rows is not None and done >= max_rows:
                break
    if done == 0:
        raise ValueError("data gave no batch; expected at least one batch of inputs")
    return done


# ------------------------------------------------------------------------------ sinks


class _MemorySink:
    """Keeps the row blocks of every layer; checks the memory before it grows too large."""

    def __init__(self, bytes_per_value: int, what: str):
        self.blocks: dict[str, list[np.ndarray]] = {}
        self.values = 0
        self.checked = 0
        self.bytes_per_value = bytes_per_value
        self.what = what
        self.inputs = 0

    def add(self, arrays: dict[str, np.ndarray], inputs: int, total: Optional[int]) -> None:
        values = sum(a.size for a in arrays.values())
        self.inputs += inputs
        if self.checked == 0 or (total is None and self.values + values > 2 * self.checked):
            # the whole job when its size is known, else twice what is held so far
            expect = (
                values * total / inputs
                if total and self.checked == 0
                else 2 * (self.values + values)
            )
            check_fits(
                expect * self.bytes_per_value,
                self.what,
                "pass out=<directory> to write the activations to .npy files in row blocks "
                "(returned memory-mapped), use max_rows=, or a streaming measure (linear cka "
                "or hsic)",
            )
            self.checked = max(self.values + values, 1)
        for label, a in arrays.items():
            self.blocks.setdefault(label, []).append(a)
        self.values += values

    def finish(self, dtype: Any = np.float32) -> dict[str, np.ndarray]:
        out = {}
        for label in list(self.blocks):
            blocks = self.blocks.pop(label)
            out[label] = np.concatenate(blocks, axis=0, dtype=dtype)
            del blocks
        return out

    def close(self) -> None:
        self.blocks = {}


_NPY_HEADER_BYTES = 128


def _npy_header(rows: int, cols: int) -> bytes:
    """A version 1.0 ``.npy`` header of fixed length for a C-order ``<f4`` (rows, cols) array."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    body = text.ljust(_NPY_HEADER_BYTES - 11) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


def _file_name(label: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", label) or "layer"
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}-{k}"
    taken.add(name)
    return name + ".npy"


class _NpySink:
    """Writes every layer as a growing ``.npy`` file, its header updated after each block (so
    the file is valid with the rows written so far, also after an interruption)."""

    def __init__(self, directory: Union[str, os.PathLike]):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.files: dict[str, Any] = {}
        self.paths: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self.taken: set = set()

    def add(self, arrays: dict[str, np.ndarray], inputs: int, total: Optional[int]) -> None:
        for label, a in arrays.items():
            if label not in self.files:
                path = os.path.join(self.directory, _file_name(label, self.taken))
                self.paths[label] = path
                self.files[label] = open(path, "wb")
                self.files[label].write(_npy_header(0, a.shape[1]))
                self.rows[label] = 0
            f = self.files[label]
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
            self.rows[label] += a.shape[0]
            f.seek(0)
            f.write(_npy_header(self.rows[label], a.shape[1]))
            f.seek(0, os.SEEK_END)

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def finish(self, dtype: Any = None) -> dict[str, np.ndarray]:
        self.close()
        return {label: np.load(path, mmap_mode="r") for label, path in self.paths.items()}


# ------------------------------------------------------------------------------ extract


def extract(
    model: Any,
    data: Any,
    layers: Any,
    *,
    pooling: Union[None, str, Mapping[str, str]] = None,
    output: Any = None,
    input_fn: Optional[Callable[[Any], Any]] = None,
    device: Any = None,
    max_rows: Optional[int] = None,
    out: Union[None, str, os.PathLike] = None,
    reuse: Optional[str] = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    r"""Run ``model`` over ``data`` and return the activations of ``layers``, one matrix each.

    Parameters
    ----------
    model : torch.nn.Module
        Any PyTorch model, Hugging Face ones included. It runs in eval mode under
        ``torch.inference_mode()``; its training flags are restored afterwards.
    data : DataLoader, iterable of batches, tensor or ndarray
        A batch is a tensor (the input), a tuple or list whose first item is the input (e.g.
        ``(x, y)`` from a ``TensorDataset``), or a dict of model keyword arguments (e.g. a
        tokenizer's output), whose ``attention_mask`` is the pooling mask. One tensor (or NumPy
        array) is split into batches of ``batch_size`` rows. Floating NumPy arrays take the
        model's dtype; tensors go to ``device`` as they are.
    layers : str, torch.nn.Module, or list of them
        Module names from ``model.named_modules()``; glob patterns over them (``*`` and ``?``
        within one dotted component, ``**`` across: ``"encoder.layer.*"`` is each block,
        not their submodules); module objects; ``"hidden_states"`` for a Hugging Face model's
        hidden states (called with ``output_hidden_states=True``; named ``hidden_states.0``
        (embeddings) to ``hidden_states.L``). Unknown names raise
        :class:`~congruence.errors.LayerNotFoundError` listing close matches.
    pooling : str or dict of layer name to str, optional
        How 3-D ``(n, tokens, d)`` and 4-D ``(n, c, h, w)`` activations become rows (see
        :func:`congruence.pool`; with a mask every policy uses real tokens only). 2-D
        activations are kept as they are. Without a policy, a 3-D or 4-D layer raises a
        ValueError during the first forward pass, listing the policies.
    output : int, str or callable, optional
        Which part of a module's output is the activation when it is not a tensor: an index
        into a tuple or ``ModelOutput``, a key of a dict or ``ModelOutput``, or a function of
        the output returning a tensor (applied to every layer's output). Default: a tensor as
        it is, the first item of a tuple, list or ``ModelOutput``.
    input_fn : callable, optional
        ``input_fn(batch)`` gives what the model is called with: a tensor (``model(x)``), a
        tuple (``model(*x)``) or a dict (``model(**x)``, its ``attention_mask`` the mask).
    device : str or torch.device, optional
        Where the inputs are sent (default: the device of the model's parameters). The model
        is not moved. Activations come back to the CPU as they arrive.
    max_rows : int, optional
        Stop after this many inputs (the last batch is cut).
    out : path, optional
        A directory: each layer is written to ``<out>/<layer>.npy`` (float32, characters other
        than letters, digits, ``. _ -`` replaced by ``_``) in row blocks as the batches arrive,
        and returned as a read-only memory map, for activation sets larger than memory.
        Existing files of the same names are overwritten; each file is a valid ``.npy`` of the
        rows written so far even if the run is interrupted.
    reuse : {"first", "last", "stack"}, optional
        For a module that runs several times in one forward pass (an error naming it by
        default): keep the first call's activations, the last call's, or all of them side by
        side (call ``j`` in columns ``j p .. (j+1) p - 1``).
    batch_size : int
        Forward batch size when ``data`` is one tensor or array (default 256).
    progress : bool
        Show progress (tqdm when installed, else a one-line counter on stderr) once the
        extraction has run for more than a second.

    Returns
    -------
    dict of str to float32 ndarray of shape (rows, features)
        In layer order. ``rows`` is the number of inputs, or of real tokens / positions with
        ``pooling="tokens"`` / ``"spatial"``.

    Raises
    ------
    LayerNotFoundError
        For a layer name or pattern that is not in the model.
    ValueError
        For invalid options, 3-D/4-D activations without pooling, a reused module without
        ``reuse``, outputs that are not tensors, layers that do not run, layers giving
        different numbers of rows, models or inputs on the ``meta`` device.
    MemoryError
        When the activations would not fit in memory (estimated after the first batch);
        pass ``out=``.

    Examples
    --------
    >>> import numpy as np, torch, congruence as cg
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> x = torch.randn(100, 8)
    >>> acts = cg.extract(net, x, ["0", "2"], batch_size=32)
    >>> {k: v.shape for k, v in acts.items()}
    {'0': (100, 16), '2': (100, 4)}
    >>> bool(np.allclose(acts["2"], net(x).detach().numpy(), rtol=0, atol=1e-6))
    True
    """
    batch_size, max_rows, progress = _check_options(
        pooling, output, reuse, batch_size, max_rows, progress, out
    )
    entries = _resolve(model, layers, "the model")
    tap = _Tap(
        model, entries, "the model", output=output, reuse=reuse, pooling=pooling, device=device
    )
    sink: Any = (
        _NpySink(out)
        if out is not None
        else _MemorySink(8, "keeping the extracted activations in memory")
    )
    try:
        first = [True]

        def consume(results: list[dict], inputs: int, total: Optional[int]) -> None:
            if first[0]:
                _check_pooling_keys(pooling, [tap])
                first[0] = False
            sink.add(results[0], inputs, total)

        _drive(
            [tap],
            data,
            consume,
            input_fn=input_fn,
            batch_size=batch_size,
            max_rows=max_rows,
            progress=progress,
            pooling=pooling,
        )
        return sink.finish()
    finally:
        sink.close()


def _check_pooling_keys(pooling: Any, taps: Sequence[_Tap]) -> None:
    if not isinstance(pooling, Mapping):
        return
    labels: list[str] = []
    for t in taps:
        labels += _labels(t.entries, t.n_hidden or 0)
    for key in pooling:
        find_layer(key, labels, "the requested layers (a key of pooling=)")
