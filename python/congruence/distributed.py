"""Dask: exact linear CKA/HSIC layer matrices over arrays chunked along rows.

The implementation lives with the other streaming drivers, in
:mod:`congruence.streaming.dask`; this module keeps its public name.
"""

from congruence.streaming.dask import dask_compare_layers

__all__ = ["dask_compare_layers"]
