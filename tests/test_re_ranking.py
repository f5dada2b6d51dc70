"""Sparse, chunked k-reciprocal re-ranking against the authors' dense re_ranking, written plainly."""

import numpy as np
import pytest
import torch

from dcal.evaluation import EvaluationError, re_ranking, re_ranking_chunks, reid_metrics_from_distances


def dense_re_ranking(probFea, galFea, k1, k2, lambda_value):
    """Zhong et al.'s re_ranking (as in TransReID / fast-reid), with V in float32 instead of float16."""
    query_num = probFea.size(0)
    all_num = query_num + galFea.size(0)
    feat = torch.cat([probFea, galFea])
    distmat = (
        torch.pow(feat, 2).sum(dim=1, keepdim=True).expand(all_num, all_num)
        + torch.pow(feat, 2).sum(dim=1, keepdim=True).expand(all_num, all_num).t()
    )
    distmat.addmm_(feat, feat.t(), beta=1, alpha=-2)
    original_dist = distmat.numpy()
    gallery_num = original_dist.shape[0]
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist).astype(np.float32)
    initial_rank = np.argsort(original_dist).astype(np.int32)

    for i in range(all_num):
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, : int(np.around(k1 / 2)) + 1]
            candidate_backward_k_neigh_index = initial_rank[
                candidate_forward_k_neigh_index, : int(np.around(k1 / 2)) + 1
            ]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            if len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index)) > 2 / 3 * len(
                candidate_k_reciprocal_index
            ):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = weight / np.sum(weight)
    original_dist = original_dist[:query_num,]
    if k2 != 1:
        V_qe = np.zeros_like(V, dtype=np.float32)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = []
    for i in range(gallery_num):
        invIndex.append(np.where(V[:, i] != 0)[0])
    jaccard_dist = np.zeros_like(original_dist, dtype=np.float32)
    for i in range(query_num):
        temp_min = np.zeros(shape=[1, gallery_num], dtype=np.float32)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[0, indImages[j]] = temp_min[0, indImages[j]] + np.minimum(
                V[i, indNonZero[j]], V[indImages[j], indNonZero[j]]
            )
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)
    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def identity_features(rng, num, num_ids, dim):
    pids = rng.integers(0, num_ids, num)
    centres = rng.normal(size=(num_ids, dim))
    return (centres[pids] + rng.normal(size=(num, dim))).astype(np.float32), pids


@pytest.mark.parametrize(
    "num_query, num_gallery, k1, k2, lambda_value",
    [(30, 90, 20, 6, 0.3), (17, 60, 5, 1, 0.5), (40, 120, 7, 3, 0.0)],
)
def test_matches_dense_reference(num_query, num_gallery, k1, k2, lambda_value):
    rng = np.random.default_rng(num_query + k1)
    feats, pids = identity_features(rng, num_query + num_gallery, 12, 16)
    qf, gf = feats[:num_query], feats[num_query:]
    expected = dense_re_ranking(torch.from_numpy(qf), torch.from_numpy(gf), k1, k2, lambda_value)
    result = re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value)
    assert result.shape == (num_query, num_gallery)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)

    cams = rng.integers(0, 3, num_query + num_gallery)
    labels = (pids[:num_query], pids[num_query:], cams[:num_query], cams[num_query:])
    chunks = re_ranking_chunks(
        torch.from_numpy(qf), torch.from_numpy(gf), k1=k1, k2=k2, lambda_value=lambda_value, chunk_size=4
    )
    ours = reid_metrics_from_distances(chunks, *labels)
    theirs = reid_metrics_from_distances(expected, *labels)
    assert ours["mAP"] == theirs["mAP"] and ours["mINP"] == theirs["mINP"]
    np.testing.assert_array_equal(ours["cmc"], theirs["cmc"])


def test_bad_parameters():
    qf, gf = np.zeros((3, 4), np.float32), np.ones((5, 4), np.float32)
    with pytest.raises(EvaluationError, match="k1"):
        re_ranking(qf, gf, k1=0)
    with pytest.raises(EvaluationError, match="exceed the 8 images"):
        re_ranking(qf, gf, k1=20)
    with pytest.raises(EvaluationError, match="dimension"):
        re_ranking(qf, gf[:, :3], k1=2)
