"""Re-ID rank lists: the ranking follows the evaluation protocol; frames mark matches and mistakes."""

import numpy as np
from PIL import Image

from dcal.viz.rank_list import BORDER, GAP, LABEL_HEIGHT, MATCH_COLOR, MISTAKE_COLOR, QUERY_COLOR, ranked_gallery, rank_list_row


def test_ranked_gallery_drops_same_identity_same_camera_and_sorts_by_distance():
    rng = np.random.default_rng(0)
    distances = rng.random(30)
    pids, cams = rng.integers(0, 4, 30), rng.integers(0, 3, 30)
    got = ranked_gallery(distances, 2, 1, pids, cams, topk=7)
    # reference: a plain loop over the gallery sorted by distance
    expected = [g for g in sorted(range(30), key=lambda g: distances[g]) if not (pids[g] == 2 and cams[g] == 1)][:7]
    assert got.tolist() == expected


def test_row_frames_query_blue_matches_green_mistakes_red():
    tile = (20, 40)
    images = [Image.new("RGB", (7, 9), (128, 128, 128)) for _ in range(3)]
    row = np.asarray(rank_list_row(images[0], images[1:], [True, False], tile_size=tile))
    tile_w = tile[0] + 2 * BORDER
    assert row.shape == (tile[1] + 2 * BORDER + LABEL_HEIGHT, 3 * tile_w + 4 * GAP, 3)
    assert row[1, 1].tolist() == list(QUERY_COLOR)
    assert row[1, tile_w + 2 * GAP + 1].tolist() == list(MATCH_COLOR)
    assert row[1, 2 * tile_w + 3 * GAP + 1].tolist() == list(MISTAKE_COLOR)
    assert row[BORDER + 5, BORDER + 5].tolist() == [128, 128, 128]
