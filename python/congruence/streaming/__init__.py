r"""Large activation sets: exact streaming linear CKA/HSIC, minibatch CKA, and their drivers.

One home for computing on more rows than fit in memory:

* :mod:`~congruence.streaming.moments`: the algebra of the exact estimators, centred float64
  co-moments that merge (Chan, Golub & LeVeque 1979), and the validation of a batch of layers;
* :mod:`~congruence.streaming.exact`: :class:`CKAAccumulator`, :class:`HSICAccumulator`
  (two representations) and :class:`LayerAccumulator` (every layer of one or two models),
  whose values equal :func:`congruence.cka`, :func:`congruence.hsic` and
  :func:`congruence.compare_layers` (linear kernel) on all rows seen, whatever the batches;
* :mod:`~congruence.streaming.minibatch`: minibatch CKA (Nguyen, Raghu & Kornblith 2021),
  :class:`MinibatchCKA` and :func:`minibatch_cka`, a different estimator whose value depends
  on the batch size;
* :mod:`~congruence.streaming.drive`: the drivers that feed them row blocks, from files and
  arrays (:func:`stream_layers`, over the readers of :mod:`congruence.io`) and from models
  (:func:`congruence.compare_models`);
* :mod:`~congruence.streaming.dask`: the same over Dask arrays chunked along rows
  (:func:`congruence.distributed.dask_compare_layers`).

Every set of layers is read by the one parser, :func:`congruence.results.layer_set`.

>>> import numpy as np, congruence as cg
>>> from congruence.streaming import CKAAccumulator
>>> X = np.random.default_rng(0).standard_normal((300, 4))
>>> acc = CKAAccumulator()
>>> for s in range(0, 300, 100):
...     _ = acc.update(X[s:s + 100], 2 * X[s:s + 100])
>>> round(acc.value(), 12)
1.0
"""

from congruence.streaming.drive import stream_layers
from congruence.streaming.exact import CKAAccumulator, HSICAccumulator, LayerAccumulator
from congruence.streaming.minibatch import MinibatchCKA, batch_bounds, minibatch_cka

__all__ = [
    "CKAAccumulator",
    "HSICAccumulator",
    "LayerAccumulator",
    "MinibatchCKA",
    "minibatch_cka",
    "batch_bounds",
    "stream_layers",
]
