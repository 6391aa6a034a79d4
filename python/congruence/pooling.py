r"""Pooling policies: from token or spatial activations to one matrix of rows.

Every measure compares 2-D ``(rows, features)`` matrices. A transformer layer gives 3-D
``(n, tokens, d)`` activations, a convolutional layer 4-D ``(n, c, h, w)`` ones; a pooling
policy says which rows and features to compare. :func:`pool` is the one definition, used by
:func:`congruence.torch.extract` and :func:`congruence.compare_models`; it needs NumPy only
(tensors of any framework are converted without importing it). On floating PyTorch tensors
those two compute ``"mean"`` and ``"max"`` inside the model's forward pass with torch's own
operations, to the same definition (means summed in float64, then rounded to float32: at
most one float32 unit from :func:`pool`, whose rounding of a differently ordered sum may
differ in rare entries).

3-D ``(n, T, d)`` activations ``x_{i,t}`` with an optional mask ``M_{i,t} \in \{0, 1\}``
(1 = a real token, 0 = padding; without a mask every token counts). With
:math:`S_i = \{t : M_{i,t} = 1\}`, every policy uses the tokens of :math:`S_i` only:

====================  =======================================================  ==============
policy                row ``i`` (or rows)                                      result shape
====================  =======================================================  ==============
``"mean"``            :math:`\frac{1}{|S_i|}\sum_{t \in S_i} x_{i,t}`          ``(n, d)``
``"first"``           :math:`x_{i,\min S_i}` (the CLS token without padding)   ``(n, d)``
``"last"``            :math:`x_{i,\max S_i}` (the last real token)             ``(n, d)``
``"max"``             :math:`\max_{t \in S_i} x_{i,t}` per feature             ``(n, d)``
``"flatten"``         :math:`(x_{i,1}, \dots, x_{i,T})`; refuses padded rows   ``(n, T d)``
``"tokens"``          every :math:`x_{i,t}`, :math:`t \in S_i`, each as a row  ``(sum |S_i|, d)``
====================  =======================================================  ==============

4-D ``(n, c, h, w)`` activations (no mask): ``"flatten"`` gives ``(n, c h w)`` in C order,
``"mean"`` the global average pool :math:`\frac{1}{hw}\sum_{u,v} x_{i,:,u,v}` of shape
``(n, c)``, ``"spatial"`` every position ``(i, u, v)`` as a row of its ``c`` channels, shape
``(n h w, c)`` (rows ordered by input, then ``u``, then ``v``).

2-D ``(n, p)`` activations are already one row per input and are returned as they are (as
floats) under every policy, so one policy can be given for all layers of a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from congruence._validation import _numeric_array

__all__ = ["pool", "POLICIES_3D", "POLICIES_4D"]

#: pooling policies for 3-D (n, tokens, d) activations
POLICIES_3D = ("mean", "first", "last", "max", "flatten", "tokens")
#: pooling policies for 4-D (n, c, h, w) activations
POLICIES_4D = ("flatten", "mean", "spatial")


def policies_text() -> str:
    """The policy list as printed in error messages."""
    three = ", ".join(repr(p) for p in POLICIES_3D)
    four = ", ".join(repr(p) for p in POLICIES_4D)
    return f"for 3-D (n, tokens, d): {three}; for 4-D (n, c, h, w): {four}"


def _float(a: np.ndarray) -> np.ndarray:
    """Float32 and float64 stay as they are; float16 becomes float32, the rest float64."""
    if a.dtype == np.float32 or a.dtype == np.float64:
        return a
    if a.dtype == np.float16:
        return a.astype(np.float32)
    return a.astype(np.float64)


def _check_mask(mask: Any, shape: tuple[int, ...], name: str, mask_name: str) -> np.ndarray:
    m = _numeric_array(mask, mask_name, "0/1 or boolean values (1 = token, 0 = padding)")
    if m.shape != tuple(shape[:2]):
        raise ValueError(
            f"{mask_name} has shape {m.shape} but {name} has shape {shape}; the mask must be "
            f"(n, tokens) = {tuple(shape[:2])}, 1 for a real token and 0 for padding"
        )
    if m.dtype != bool:
        bad = (m != 0) & (m != 1)
        if bad.any():
            raise ValueError(
                f"{mask_name} holds {int(np.count_nonzero(bad))} value(s) other than 0 and 1; "
                "expected 1 for a real token and 0 for padding"
            )
        m = m != 0
    empty = ~m.any(axis=1)
    if empty.any():
        raise ValueError(
            f"{mask_name}: row {int(np.flatnonzero(empty)[0])} (of {int(empty.sum())} such "
            "row(s)) has no unmasked token, so it has no pooled value; remove such inputs"
        )
    return m


def pool(acts: Any, policy: str, mask: Any = None, *, name: str = "acts") -> np.ndarray:
    r"""Pool 3-D token or 4-D spatial activations into a 2-D ``(rows, features)`` matrix.

    Parameters
    ----------
    acts : array-like or tensor of shape (n, p), (n, tokens, d) or (n, c, h, w)
        Activations of ``n`` inputs (NumPy arrays, nested lists, or tensors of any framework,
        converted without importing it; bfloat16 and float16 become float32).
    policy : str
        3-D: ``"mean"``, ``"first"``, ``"last"``, ``"max"``, ``"flatten"``, ``"tokens"``;
        4-D: ``"flatten"``, ``"mean"``, ``"spatial"`` (see the module documentation for the
        formulas). 2-D input is returned unchanged (as a float array) under every policy.
    mask : array-like of shape (n, tokens), optional
        3-D only: 1 (or True) for a real token, 0 for padding, e.g. a tokenizer's
        ``attention_mask``. Every policy then uses the unmasked tokens only; ``"flatten"``
        refuses rows with padding (their padded positions would be compared as features).
    name : str
        The argument's name in error messages.

    Returns
    -------
    ndarray
        float32 for float32/float16/bfloat16 input, else float64. Means are accumulated in
        float64. ``"tokens"`` and ``"spatial"`` give one row per (input, token) or
        (input, position), in input order.

    Raises
    ------
    ValueError
        For a policy not defined for the array's dimension (listing the policies), an array
        that is not 2-, 3- or 4-D, a mask of the wrong shape or values, a row without any
        unmasked token, a mask given for 4-D input, or ``"flatten"`` with padding.

    Examples
    --------
    >>> import numpy as np, congruence as cg
    >>> x = np.arange(12.0).reshape(2, 3, 2)        # 2 inputs, 3 tokens, 2 features
    >>> mask = np.array([[1, 1, 1], [1, 1, 0]])      # the second input has one pad token
    >>> cg.pool(x, "mean", mask)
    array([[2., 3.],
           [7., 8.]])
    >>> cg.pool(x, "last", mask)
    array([[4., 5.],
           [8., 9.]])
    >>> cg.pool(x, "tokens", mask).shape             # 3 + 2 real tokens
    (5, 2)
    >>> cg.pool(np.ones((4, 8, 5, 5)), "mean").shape  # global average pool
    (4, 8)
    """
    a = _float(_numeric_array(acts, name, "real numbers (float, int or bool)"))
    if a.ndim == 2:
        if not isinstance(policy, str) or policy not in POLICIES_3D + POLICIES_4D:
            raise ValueError(f"policy={policy!r} is invalid; expected one of: {policies_text()}")
        return a
    if a.ndim not in (3, 4):
        raise ValueError(
            f"{name} has shape {a.shape} ({a.ndim}-D); pooling takes 3-D (n, tokens, d) or "
            "4-D (n, c, h, w) activations (2-D ones are already one row per input)"
        )
    allowed = POLICIES_3D if a.ndim == 3 else POLICIES_4D
    if not isinstance(policy, str) or policy not in allowed:
        kind = "3-D (n, tokens, d)" if a.ndim == 3 else "4-D (n, c, h, w)"
        listed = ", ".join(repr(p) for p in allowed)
        raise ValueError(
            f"policy={policy!r} is invalid for the {kind} {name} of shape {a.shape}; expected "
            f"one of {listed}"
        )
    n = a.shape[0]
    if a.ndim == 4:
        if mask is not None:
            raise ValueError(
                f"mask is for 3-D (n, tokens, d) activations (padding tokens); {name} has the "
                f"4-D shape {a.shape}: pass mask=None"
            )
        if policy == "flatten":
            return a.reshape(n, -1)
        if policy == "mean":
            return a.mean(axis=(2, 3), dtype=np.float64).astype(a.dtype, copy=False)
        c = a.shape[1]
        return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).reshape(-1, c)
    # 3-D (n, T, d)
    T = a.shape[1]
    m = None if mask is None else _check_mask(mask, a.shape, name, "mask")
    if m is None or m.all():
        if policy == "mean":
            return a.mean(axis=1, dtype=np.float64).astype(a.dtype, copy=False)
        if policy == "first":
            return a[:, 0, :].copy()
        if policy == "last":
            return a[:, T - 1, :].copy()
        if policy == "max":
            return a.max(axis=1)
        if policy == "flatten":
            return a.reshape(n, -1)
        return a.reshape(n * T, a.shape[2])
    if policy == "mean":
        total = np.einsum("ntd,nt->nd", a, m.astype(a.dtype), dtype=np.float64)
        return (total / m.sum(axis=1, dtype=np.float64)[:, None]).astype(a.dtype, copy=False)
    if policy == "first":
        return a[np.arange(n), np.argmax(m, axis=1), :]
    if policy == "last":
        return a[np.arange(n), T - 1 - np.argmax(m[:, ::-1], axis=1), :]
    if policy == "max":
        return np.where(m[:, :, None], a, -np.inf).max(axis=1).astype(a.dtype, copy=False)
    if policy == "flatten":
        padded = ~m.all(axis=1)
        raise ValueError(
            f"pooling='flatten' of {name} {a.shape} would compare padding as features: "
            f"{int(padded.sum())} row(s) have padded tokens (first: row "
            f"{int(np.flatnonzero(padded)[0])}); use 'mean', 'first', 'last', 'max' or "
            "'tokens', or pad every input to the same length without masking"
        )
    return a[m]
