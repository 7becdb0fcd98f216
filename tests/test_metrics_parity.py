"""rankseg.metrics against MONAI's DiceMetric/MeanIoU and TorchMetrics' DiceScore/MeanIoU.

Each library is run on the same random label maps (classes absent from a sample,
false positives on an empty target, void labels) and the differences are exactly
the conventions tabulated in docs/conventions.rst.  Skipped where a library is not
installed (``pip install 'rankseg-numba[test-integrations]'``).
"""

import numpy as np
import pytest

from rankseg.metrics import dice_score, iou_score

from _optional import import_or_skip

torch = import_or_skip("torch")

C = 4


@pytest.fixture
def labels(rng):
    """(B, 9, 7) label maps: class 3 absent from both, class 2 missing from target 0."""
    pred = rng.integers(0, C, (6, 9, 7))
    target = rng.integers(0, C, (6, 9, 7))
    pred[pred == 3] = 0
    target[target == 3] = 0
    target[0][target[0] == 2] = 1  # a false positive on an empty target
    return pred, target


def onehot(lab, num_classes=C):
    """One-hot (B, C, *S); labels outside [0, C) (void) give an all-zero column."""
    return torch.from_numpy(np.stack([lab == c for c in range(num_classes)], 1).astype(np.float32))


def test_torchmetrics_dice_and_iou(labels):
    seg = import_or_skip("torchmetrics.segmentation")
    pred, target = labels
    dice = np.stack(
        [
            seg.DiceScore(
                num_classes=C, average="none", aggregation_level="samplewise", input_format="index"
            )(torch.from_numpy(pred[b : b + 1]), torch.from_numpy(target[b : b + 1])).numpy()
            for b in range(len(pred))
        ]
    )
    ours = dice_score(pred, target, num_classes=C)  # empty="nan"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(dice))
    np.testing.assert_allclose(ours[~np.isnan(ours)], dice[~np.isnan(dice)], atol=1e-6)
    assert np.isnan(ours[:, 3]).all()  # absent from both
    assert ours[0, 2] == 0.0  # false positive on an empty target: an error, not NaN

    iou = np.stack(
        [
            seg.MeanIoU(num_classes=C, per_class=True, input_format="index")(
                torch.from_numpy(pred[b : b + 1]), torch.from_numpy(target[b : b + 1])
            ).numpy()
            for b in range(len(pred))
        ]
    )
    ours = iou_score(pred, target, num_classes=C)
    empty = np.isnan(ours)
    np.testing.assert_array_equal(iou[empty], -1.0)  # TorchMetrics' MeanIoU: -1 for 0/0
    np.testing.assert_allclose(ours[~empty], iou[~empty], atol=1e-6)
    # include_background=False drops column 0 on both sides
    nobg = seg.DiceScore(
        num_classes=C,
        include_background=False,
        average="none",
        aggregation_level="samplewise",
        input_format="index",
    )(torch.from_numpy(pred[1:2]), torch.from_numpy(target[1:2])).numpy()
    got = dice_score(pred[1:2], target[1:2], num_classes=C, include_background=False)[0]
    np.testing.assert_allclose(np.nan_to_num(got, nan=-9), np.nan_to_num(nobg, nan=-9), atol=1e-6)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_monai_metrics(labels, metric):
    import_or_skip("monai")
    from monai.metrics import DiceMetric, MeanIoU

    cls = DiceMetric if metric == "dice" else MeanIoU
    ours_fn = dice_score if metric == "dice" else iou_score
    pred, target = labels
    p, t = onehot(pred), onehot(target)
    # ignore_empty=False: 1 for empty-vs-empty == empty="one"
    theirs = cls(include_background=True, reduction="none", ignore_empty=False)(p, t).numpy()
    np.testing.assert_allclose(ours_fn(pred, target, num_classes=C, empty="one"), theirs, atol=1e-6)
    # ignore_empty=True (MONAI's default): NaN wherever the *target* is empty, even for a
    # false positive, which rankseg scores 0
    theirs = cls(include_background=True, reduction="none", ignore_empty=True)(p, t).numpy()
    ours = ours_fn(pred, target, num_classes=C, empty="one")
    target_empty = ~np.stack([(target == c).any(axis=(1, 2)) for c in range(C)], 1)
    assert np.isnan(theirs[target_empty]).all()
    np.testing.assert_allclose(ours[~target_empty], theirs[~target_empty], atol=1e-6)
    assert ours[0, 2] == 0.0 and np.isnan(theirs[0, 2])


def test_void_labels_count_for_no_class(labels):
    """A void label (255) in rankseg == an all-zero one-hot column in MONAI."""
    import_or_skip("monai")
    from monai.metrics import DiceMetric

    pred, target = labels
    target = target.copy()
    target[:, :2] = 255  # void rows in the target
    pred = pred.copy()
    pred[:, -1] = 255  # and in the prediction
    theirs = DiceMetric(include_background=True, reduction="none", ignore_empty=False)(
        onehot(pred), onehot(target)
    ).numpy()
    ours = dice_score(pred, target, num_classes=C, empty="one")
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
