"""rankseg.metrics against hand-computed cases, and the demo (python -m rankseg)."""

import math
import subprocess
import sys

import numpy as np
import pytest

from rankseg import cli
from rankseg.__main__ import main
from rankseg.metrics import (
    dice_score,
    iou_score,
    samplewise_counts,
    samplewise_score,
    score_from_counts,
)

import naive
from _optional import import_or_skip

NAN = math.nan


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_scores_match_naive_labels(rng, metric, gamma):
    pred = rng.integers(0, 4, (3, 5, 6))
    target = rng.integers(0, 4, (3, 5, 6))
    target[1] = 0  # classes 1..3 absent from sample 1
    got = samplewise_score(pred, target, metric=metric, smooth=gamma, num_classes=4)
    for b in range(3):
        for c in range(4):
            ref = naive.metric_value(
                (pred[b] == c).ravel(), (target[b] == c).ravel(), metric, gamma
            )
            assert got[b, c] == pytest.approx(ref, rel=1e-14)


def test_scores_masks_and_void(rng):
    pred = rng.random((2, 3, 10)) > 0.5
    target = rng.random((2, 3, 10)) > 0.5
    got = samplewise_score(pred, target, metric="iou")
    for b in range(2):
        for c in range(3):
            assert got[b, c] == pytest.approx(
                naive.metric_value(pred[b, c], target[b, c], "iou", 0.0)
            )
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
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        samplewise_counts(np.zeros((1, 3), int), np.zeros((1, 3), int), num_classes=0)
    # a stray huge label: a clear error, not counts for a billion classes
    with pytest.raises(ValueError, match=r"largest label is 1000000000.*pass num_classes"):
        samplewise_counts(np.array([[0, 10**9]]), np.array([[0, 1]]))
    assert samplewise_counts(np.array([[0, 10**9]]), np.array([[0, 1]]), 2).shape == (1, 2, 3)


def test_scores_of_an_empty_batch():
    """predict returns (0, ...) outputs for B = 0; the metrics take them."""
    labels = np.zeros((0, 4, 4), np.int64)
    masks = np.zeros((0, 3, 4, 4), bool)
    assert samplewise_counts(labels, labels, num_classes=3).shape == (0, 3, 3)
    assert samplewise_score(masks, masks).shape == (0, 3)
    from rankseg.metrics import dice_score, iou_score

    assert dice_score(labels, labels, num_classes=3).shape == (0, 3)
    assert iou_score(masks, masks).shape == (0, 3)


# Hand-computed: sample 0 of 6 pixels, 4 classes.
#   pred   = 0 0 1 1 1 2      target = 0 1 1 1 0 0
#   class 0: |P|=2 |T|=3 |P∩T|=1 -> Dice 2/5,  IoU 1/4
#   class 1: |P|=3 |T|=3 |P∩T|=2 -> Dice 4/6,  IoU 2/4
#   class 2: |P|=1 |T|=0 |P∩T|=0 -> Dice 0,    IoU 0     (false positive: never "empty")
#   class 3: absent from both    -> the empty policy
# sample 1: everything background in both -> classes 1..3 empty, class 0 perfect.
PRED = np.array([[0, 0, 1, 1, 1, 2], [0, 0, 0, 0, 0, 0]])
TARGET = np.array([[0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]])


@pytest.mark.parametrize(
    ("empty", "fill"), [("nan", NAN), ("one", 1.0), ("zero", 0.0), ("NaN ", NAN)]
)
def test_dice_iou_hand_computed(empty, fill):
    dice = dice_score(PRED, TARGET, num_classes=4, empty=empty)
    iou = iou_score(PRED, TARGET, num_classes=4, empty=empty)
    np.testing.assert_allclose(dice, [[2 / 5, 4 / 6, 0.0, fill], [1.0, fill, fill, fill]])
    np.testing.assert_allclose(iou, [[1 / 4, 2 / 4, 0.0, fill], [1.0, fill, fill, fill]])
    assert dice.dtype == np.float64 and dice.shape == (2, 4)


def test_dice_include_background_and_masks():
    no_bg = dice_score(PRED, TARGET, num_classes=4, include_background=False)
    np.testing.assert_allclose(no_bg, [[4 / 6, 0.0, NAN], [NAN, NAN, NAN]])
    # the same case as one-hot masks (B, C, N) gives the same numbers
    masks_p = np.stack([PRED == c for c in range(4)], axis=1)
    masks_t = np.stack([TARGET == c for c in range(4)], axis=1)
    np.testing.assert_allclose(
        dice_score(masks_p, masks_t), dice_score(PRED, TARGET, num_classes=4)
    )
    np.testing.assert_allclose(
        iou_score(masks_p, masks_t, include_background=False, empty="one"),
        [[2 / 4, 0.0, 1.0], [1.0, 1.0, 1.0]],
    )
    # 2-D label maps (B, H, W) and a void label that counts for no class
    pred2 = np.array([[[1, 255], [0, 1]]])
    targ2 = np.array([[[1, 1], [0, 0]]])
    np.testing.assert_allclose(dice_score(pred2, targ2, num_classes=2), [[2 / 3, 2 / 4]])


def test_dice_iou_relation(rng):
    pred = rng.integers(0, 3, (4, 7, 7))
    target = rng.integers(0, 3, (4, 7, 7))
    d = dice_score(pred, target, num_classes=3)
    j = iou_score(pred, target, num_classes=3)
    np.testing.assert_allclose(j, d / (2 - d))  # IoU = Dice / (2 - Dice)
    # 'zero' is the SPEC convention of samplewise_score
    np.testing.assert_allclose(
        dice_score(pred, target, num_classes=3, empty="zero"),
        samplewise_score(pred, target, "dice", num_classes=3),
    )


def test_score_from_counts():
    np.testing.assert_allclose(score_from_counts([[2, 1, 1], [0, 0, 0]]), [2 / 3, NAN])
    np.testing.assert_allclose(score_from_counts([[0, 0, 0]], "iou", "one"), [1.0])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 3\)"):
        score_from_counts([[1, 2]])


def test_metric_errors():
    with pytest.raises(ValueError, match="unknown empty 'skip'"):
        dice_score(PRED, TARGET, empty="skip")
    with pytest.raises(TypeError, match="empty must be a string"):
        iou_score(PRED, TARGET, empty=None)
    with pytest.raises(TypeError, match="include_background must be a bool"):
        dice_score(PRED, TARGET, include_background=0)
    with pytest.raises(ValueError, match="pred has shape"):
        iou_score(PRED, TARGET[:, :3])


# ----------------------------------------------------------------------- the demo


def test_demo_report_lists_every_available_solver(monkeypatch):
    monkeypatch.setattr(cli, "AVAILABLE", ("rma", "argmax", "tr"))
    report = cli.demo((4, 10, 10), 3, draws=2, repeat=1)
    assert "argmax" in report and "time/argmax" in report
    for metric in ("dice", "iou"):
        for solver in cli.available_solvers(metric):
            assert f"rankseg {metric} ({solver})" in report
    rows = [
        line
        for line in report.splitlines()
        if line.startswith(("argmax ", "rankseg dice", "rankseg iou"))
    ]
    assert len(rows) == 1 + len(cli.available_solvers("dice")) + len(cli.available_solvers("iou"))
    assert "±" in rows[0] and rows[0].rstrip().endswith("1.00x")


def test_demo_picks_up_solvers_at_run_time(monkeypatch):
    # a solver that lands later appears without touching the demo
    monkeypatch.setattr(cli, "SOLVERS", {"dice": ("rma",), "iou": (), "acc": ("argmax",)})
    report = cli.demo((3, 6, 6), 2, draws=2, repeat=1)
    assert "rankseg dice (rma)" in report and "rankseg iou" not in report


def test_main_without_arguments_runs_the_demo(monkeypatch, capsys):
    calls = []

    def fake_demo(shape, classes, **kw):
        calls.append((tuple(shape), classes, kw))
        return "REPORT"

    monkeypatch.setattr(cli, "demo", fake_demo)
    assert main([]) == 0
    assert calls[-1][0] == (48, 96, 96) and calls[-1][1] == 6
    assert capsys.readouterr().out.strip() == "REPORT"
    # options without a command are the demo's (the README's `python -m rankseg ...`)
    assert main(["--shape", "4", "8", "--classes", "3", "--draws", "2"]) == 0
    assert calls[-1][:2] == ((4, 8), 3) and calls[-1][2]["draws"] == 2


def test_demo_argument_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--classes", "1"])
    assert exc.value.code == 2
    assert "--classes >= 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match="classes >= 2"):
        cli.demo((4, 4), 1)
    with pytest.raises(ValueError, match="sizes >= 1"):
        cli.demo((0, 4), 3)


def test_python_m_rankseg_runs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rankseg",
            "--shape",
            "4",
            "12",
            "12",
            "--classes",
            "3",
            "--draws",
            "2",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "rankseg dice (rma)" in out.stdout and "time/argmax" in out.stdout


def test_dice_matches_torchmetrics(rng):
    """Same numbers as TorchMetrics' samplewise DiceScore (runs only where it is installed)."""
    torch = import_or_skip("torch")
    segmentation = import_or_skip("torchmetrics.segmentation")
    from rankseg.metrics import dice_score

    pred = rng.integers(0, 4, (3, 9, 7))
    target = rng.integers(0, 4, (3, 9, 7))
    pred[pred == 3] = 0
    target[target == 3] = 0  # class 3 absent from both: NaN on both sides
    ours = dice_score(pred, target, num_classes=4)
    theirs = []
    for b in range(3):
        metric = segmentation.DiceScore(
            num_classes=4, average="none", aggregation_level="samplewise", input_format="index"
        )
        theirs.append(
            metric(torch.from_numpy(pred[b : b + 1]), torch.from_numpy(target[b : b + 1]))
        )
    theirs = np.stack([t.numpy() for t in theirs])
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)


# -- a (Z, Y, X) volume passed where (B, H, W) label maps are expected ---------------


def ct_volume():
    from rankseg.datasets import ct3d

    probs = ct3d(shape=(1, 4, 32, 48, 48))
    return rankseg_predict(probs)[0], probs.argmax(1)[0]


def rankseg_predict(probs):
    from rankseg import predict

    return predict(probs)


@pytest.mark.parametrize(
    "fn",
    [
        dice_score,
        iou_score,
        samplewise_score,
        lambda p, t, **kw: samplewise_counts(p, t, **kw)[..., 0],
    ],
)
def test_volume_as_batch_warns(fn):
    from rankseg.metrics import VolumeAsBatchWarning

    pred, target = ct_volume()
    with pytest.warns(VolumeAsBatchWarning, match=r"pred\[None\] and target\[None\]") as rec:
        per_slice = fn(pred, target)
    assert per_slice.shape[0] == 32  # still read as 32 items: the warning says so
    assert "(32, 48, 48) were read as a batch of 32 2-D maps of 48 x 48" in str(rec[0].message)
    if fn in (dice_score, iou_score, samplewise_score):
        assert rec[0].filename == __file__  # points at the caller
    one = fn(pred, target, batch=False)  # one volume: no warning
    np.testing.assert_array_equal(one, fn(pred[None], target[None]))
    assert one.shape[0] == 1
    np.testing.assert_array_equal(fn(pred, target, batch=True), per_slice)  # no warning


def test_genuine_batches_do_not_warn(rng):
    """Independent 2-D maps, identical copies, empty maps and short stacks stay silent
    (pytest turns warnings into errors)."""
    from rankseg.datasets import ct3d, voc2d

    for seed in range(3):
        labels = voc2d(seed, shape=(16, 21, 48, 48)).argmax(1)
        dice_score(labels, labels[::-1].copy())
    slices = ct3d(1, shape=(12, 4, 1, 48, 48)).argmax(1)[:, 0]  # 2-D cases, one per volume
    dice_score(slices, slices)
    one = slices[:1].repeat(10, axis=0)
    dice_score(one, one)  # identical items: nothing changes along the stack
    dice_score(np.zeros((20, 8, 8), int), np.zeros((20, 8, 8), int))
    pred, target = ct_volume()
    dice_score(pred[:7], target[:7])  # under 8 items: not checked
    dice_score(rng.integers(0, 3, (16, 9, 9)), rng.integers(0, 3, (16, 9, 9)))  # noise


def test_batch_keyword_checks():
    with pytest.raises(TypeError, match="batch must be True, False or None; got str"):
        dice_score(np.zeros((1, 3), int), np.zeros((1, 3), int), batch="no")
    masks = np.zeros((2, 4, 4), bool)  # (C, H, W) of one sample
    masks[1, :2] = True
    got = dice_score(masks, masks, batch=False)
    np.testing.assert_array_equal(got, [[NAN, 1.0]])
