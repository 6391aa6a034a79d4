"""The exception and warning classes of congruence, and the one helper that issues warnings.

Every class subclasses the built-in one(s) a careful caller would already catch, so code written
against plain ``ValueError`` / ``KeyError`` / ``TypeError`` keeps working:

* :class:`DegenerateDataWarning` (a ``RuntimeWarning``): valid arguments whose data make the
  formula divide by zero or lose its meaning (a constant representation, identical rows, dead
  units, correlations that are trivially 1). Every ``nan`` a measure returns for such data comes
  with one, naming the argument and the cause.
* :class:`ParameterError` (``ValueError``): a parameter or option value outside its domain
  (``kernel="cubic"``, ``k=0``, ``debiased="yes"``); never turned into a ``nan`` cell by
  ``on_error="nan"``, which is for data on which a cell cannot be computed.
* :class:`InputTypeError` (``TypeError`` and ``ValueError``): an array of complex, object or
  otherwise non-real dtype.
* :class:`LayerNotFoundError` (``KeyError`` and ``ValueError``): a layer name that is not there;
  the message lists the close matches.
* :class:`UnreadableFileError` (``ValueError``): a file that exists but cannot be read safely
  (truncated, malformed header, pickled objects); ``path`` names it.
* :class:`ResamplingBiasWarning` (a ``UserWarning``): a bootstrap of a measure whose estimate
  is biased by the duplicated rows a resample contains (ranks with ties, nearest neighbours,
  zero distances, U-statistics); the interval is returned, to be read with care.

>>> import warnings, numpy as np, congruence as cg
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     value = cg.cka(np.ones((10, 3)), np.arange(20.0).reshape(10, 2))
>>> value != value, caught[0].category.__name__
(True, 'DegenerateDataWarning')
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "DegenerateDataWarning",
    "InputTypeError",
    "LayerNotFoundError",
    "ParameterError",
    "UnreadableFileError",
    "ResamplingBiasWarning",
    "warn_degenerate",
    "warn_resampling_bias",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class DegenerateDataWarning(RuntimeWarning):
    """The data make a measure's formula undefined (``nan``) or trivial.

    Raised as a warning, never as an exception: the arguments are valid, the value returned
    (``nan`` or the formula's defined value) is documented per measure.
    """


class ParameterError(ValueError):
    """A parameter or option value outside its domain (the message names it and the domain)."""


class InputTypeError(TypeError, ValueError):
    """An array holds complex, object or other non-real values."""


class LayerNotFoundError(KeyError, ValueError):
    """A layer name that is not among the available ones (the message lists close matches)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnreadableFileError(ValueError):
    """A file that exists but cannot be read safely; ``path`` is the file."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)
        super().__init__(f"cannot read {self.path!r}: {reason}")


class ResamplingBiasWarning(UserWarning):
    """Rows duplicated by resampling with replacement bias this measure's estimate, so its
    bootstrap distribution is shifted (see :func:`congruence.bootstrap`)."""


def _outside_package_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside congruence."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            return level
        frame = frame.f_back
        level += 1
    return level


def warn_degenerate(message: str) -> None:
    """Issue a :class:`DegenerateDataWarning` attributed to the caller's own code."""
    warnings.warn(message, DegenerateDataWarning, stacklevel=_outside_package_stacklevel())


def warn_resampling_bias(message: str) -> None:
    """Issue a :class:`ResamplingBiasWarning` attributed to the caller's own code."""
    warnings.warn(message, ResamplingBiasWarning, stacklevel=_outside_package_stacklevel())
