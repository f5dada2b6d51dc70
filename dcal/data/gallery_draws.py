"""VehicleID's galleries (Liu et al., "Deep Relative Distance Learning", CVPR 2016): a test list has
no query / gallery split, so for each of :data:`NUM_DRAWS` draws one image per vehicle, chosen
uniformly at random, forms the gallery and all other images are queries.

The parser (:mod:`dcal.data.vehicleid`) splits its ``query`` / ``gallery`` by the first draw; the
evaluation (:mod:`dcal.evaluation.vehicleid_protocol`) scores every draw.  The draws are
deterministic: draw ``d`` uses ``numpy.random.default_rng([seed, d])``, so every evaluation of a
test list, in any run, scores the same ten galleries.
"""

from __future__ import annotations

import numpy as np

from dcal.errors import EvaluationError

NUM_DRAWS = 10
SEED = 0


def gallery_draws(pids, num_draws: int = NUM_DRAWS, seed: int = SEED) -> list[np.ndarray]:
    """For each draw, the (ascending) indices of one image per identity of ``pids``, each identity's
    image chosen uniformly at random (the smallest of i.i.d. uniform keys)."""
    pids = np.asarray(pids)
    if pids.ndim != 1 or len(pids) == 0:
        raise EvaluationError(f"gallery draws need a non-empty 1-D array of identities, got shape {pids.shape}")
    if num_draws < 1:
        raise EvaluationError(f"num_draws must be at least 1, got {num_draws}")
    draws = []
    for draw in range(num_draws):
        keys = np.random.default_rng([seed, draw]).random(len(pids))
        order = np.lexsort((keys, pids))  # by identity, then key
        first = np.ones(len(order), dtype=bool)
        first[1:] = pids[order[1:]] != pids[order[:-1]]
        draws.append(np.sort(order[first]))
    return draws
