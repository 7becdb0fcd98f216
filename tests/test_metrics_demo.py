import numpy as np
import pytest

import naive
from rankseg.__main__ import main
from rankseg.metrics import samplewise_counts, samplewise_score


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_scores_match_naive_labels(rng, metric, gamma):
    pred = rng.integers(0, 4, (3, 5, 6))
    target = rng.integers(0, 4, (3, 5, 6))
    target[1] = 0  # classes 1..3 absent from sample 1
    got = samplewise_score(pred, target, metric=metric, smooth=gamma, num_classes=4)
    for b in range(3):
        for c in range(4):
            ref = naive.metric_value((pred[b] == c).ravel(), (target[b] == c).ravel(), metric, gamma)
            assert got[b, c] == pytest.approx(ref, rel=1e-14)


def test_scores_masks_and_void(rng):
    pred = rng.random((2, 3, 10)) > 0.5
    target = rng.random((2, 3, 10)) > 0.5
    got = samplewise_score(pred, target, metric="iou")
    for b in range(2):
        for c in range(3):
            assert got[b, c] == pytest.approx(naive.metric_value(pred[b, c], target[b, c], "iou", 0.0))
    # labels outside [0, C) (a void label) count for no class
    counts = samplewise_counts(np.array([[0, 255, 1]]), np.array([[0, 1, 1]]), num_classes=2)
    np.testing.assert_array_equal(counts[0], [[1, 1, 1], [1, 2, 1]])
    assert samplewise_score(np.zeros((1, 1, 3), bool), np.zeros((1, 1, 3), bool))[0, 0] == 0.0


def test_scores_errors():
    with pytest.raises(ValueError, match="pred has shape"):
        samplewise_score(np.zeros((1, 3), int), np.zeros((1, 4), int))
    with pytest.raises(ValueError, match="both be integer label maps or both boolean"):
        samplewise_score(np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="unknown metric"):
        samplewise_score(np.zeros((1, 3), int), np.zeros((1, 3), int), metric="acc")


def test_demo_runs(capsys):
    assert main(["--shape", "1", "3", "6", "12", "12", "--draws", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "argmax" in out and "rankseg dice (rma)" in out and "time / argmax" in out
    with pytest.raises(SystemExit):
        main(["--shape", "1", "1", "6", "12", "12"])
