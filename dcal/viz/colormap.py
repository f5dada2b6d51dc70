"""A perceptually ordered colour map for heat maps, written compactly (matplotlib is not a dependency).

:func:`heat_colors` maps values in [0, 1] to RGB by linear interpolation between nine anchor colours
sampled from matplotlib's ``inferno`` (dark purple → red → orange → pale yellow), so a printed figure
still reads correctly in grey scale.
"""

from __future__ import annotations

import numpy as np

INFERNO_ANCHORS = np.array(
    [
        (0, 0, 4),
        (31, 12, 72),
        (85, 15, 109),
        (136, 34, 106),
        (186, 54, 85),
        (227, 89, 51),
        (249, 140, 10),
        (249, 201, 50),
        (252, 255, 164),
    ],
    dtype=np.float64,
)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """RGB uint8 array of shape ``values.shape + (3,)`` for ``values`` in [0, 1] (clipped)."""
    values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    positions = np.linspace(0.0, 1.0, len(INFERNO_ANCHORS))
    channels = [np.interp(values, positions, INFERNO_ANCHORS[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
