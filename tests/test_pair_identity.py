"""The identity measure of attr_acgan's off/on pairs (genda.metrics.pair_identity), against hand computations."""
import pytest
import torch

from genda.metrics.pair_identity import identity_ratio, pair_identity, pairs_from_stems


def test_pairs_are_matched_by_number_and_incomplete_ones_dropped():
    stems = ["1_002", "0_001", "0_002", "1_001", "0_003", "junk"]
    off, on = pairs_from_stems(stems)
    assert off.tolist() == [1, 2] and on.tolist() == [3, 0]


def test_ratio_by_hand():
    # off images at 0, 10, 20 on a line; on images at 1, 11, 21: pairs 1 apart, the derangement (on of the next
    # pair: 11, 21, 1) is 11, 11, 19 away -> ratio 1 / (41 / 3)
    feats = torch.tensor([[0.0], [10.0], [20.0], [1.0], [11.0], [21.0]])
    r = identity_ratio(feats, torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]))
    assert r["pair_dist"] == pytest.approx(1.0) and r["unrelated_dist"] == pytest.approx(41 / 3)
    assert r["ratio"] == pytest.approx(3 / 41) and r["n_pairs"] == 3
    with pytest.raises(ValueError, match="at least 2"):
        identity_ratio(feats, torch.tensor([0]), torch.tensor([3]))


def test_identical_pairs_score_zero_and_unrelated_ones_about_one():
    g = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    stems = [f"0_{i:03d}" for i in range(50)] + [f"1_{i:03d}" for i in range(50)]
    same = pair_identity(torch.cat([faces, faces]), stems, lambda x: x.float().flatten(1), "pixels")
    assert same["identity_ratio"] == 0 and same["identity_ratio_pixels"] == 0 and same["identity_n_pairs"] == 50
    other = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    strangers = pair_identity(torch.cat([faces, other]), stems, lambda x: x.float().flatten(1), "pixels")
    assert 0.9 < strangers["identity_ratio"] < 1.1 and strangers["identity_feature_space"] == "pixels"
