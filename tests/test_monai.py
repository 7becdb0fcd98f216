"""rankseg.monai: RankSEG / RankSEGd as drop-ins for AsDiscrete / AsDiscreted.

Skipped without MONAI (``pip install 'rankseg-numba[test-integrations]'``).
"""

import importlib
import sys

import numpy as np
import pytest

from rankseg import predict
from rankseg.metrics import dice_score

from _optional import import_or_skip

torch = import_or_skip("torch")
monai = import_or_skip("monai")
nib = import_or_skip("nibabel")
rmonai = import_or_skip("rankseg.monai")

from monai.data import MetaTensor, decollate_batch  # noqa: E402
from monai.metrics import DiceMetric  # noqa: E402
from monai.transforms import (  # noqa: E402
    Activationsd,
    AsDiscrete,
    AsDiscreted,
    Compose,
    EnsureChannelFirstd,
    Invertd,
    LoadImaged,
    SaveImaged,
    Spacingd,
)

RankSEG, RankSEGd = rmonai.RankSEG, rmonai.RankSEGd


def softmax_map(rng, shape):
    x = torch.from_numpy(rng.standard_normal(shape) * 3).float()
    return torch.softmax(x, dim=0)


def meta_item(rng, shape=(3, 6, 7, 5)):
    affine = torch.tensor(
        [[0, 0, -0.8, -30], [-3.0, 0, 0, 12], [0, 0.9, 0, 8], [0, 0, 0, 1.0]], dtype=torch.float64
    )
    return MetaTensor(
        softmax_map(rng, shape), affine=affine, meta={"filename_or_obj": "case_017.nii.gz"}
    )


def test_item_keeps_meta_and_matches_predict(rng):
    img = meta_item(rng)
    before = img.clone()
    out = RankSEG(metric="dice")(img)
    assert isinstance(out, MetaTensor)
    assert out.shape == (1, 6, 7, 5) and out.dtype == torch.float32
    assert out.device == img.device
    torch.testing.assert_close(out.affine, img.affine)
    assert out.meta["filename_or_obj"] == "case_017.nii.gz"
    want = predict(img.numpy()[None])
    np.testing.assert_array_equal(out.numpy()[0], want[0])
    torch.testing.assert_close(img.as_tensor(), before.as_tensor())  # input not modified
    # the same layout as AsDiscrete(argmax=True): (1, *spatial) float
    ref = AsDiscrete(argmax=True)(img)
    assert ref.shape == out.shape and ref.dtype == out.dtype


def test_plain_tensor_batch_onehot_multilabel(rng):
    x = softmax_map(rng, (4, 5, 6))
    out = RankSEG(metric="iou", solver="exact")(x)
    assert type(out) is torch.Tensor or isinstance(out, MetaTensor)
    np.testing.assert_array_equal(
        out.numpy()[0], predict(x.numpy()[None], metric="iou", solver="exact")[0]
    )
    xb = torch.stack([x, softmax_map(rng, (4, 5, 6))])
    ob = RankSEG(batch=True)(xb)
    assert ob.shape == (2, 1, 5, 6)
    np.testing.assert_array_equal(ob.numpy()[:, 0], predict(xb.numpy()))
    oh = RankSEG(to_onehot=4)(x)
    assert oh.shape == (4, 5, 6)
    np.testing.assert_array_equal(oh.numpy().argmax(0), out.numpy()[0])
    assert (oh.sum(0) == 1).all()
    # void pixels (unassigned_policy='void') are all 0 in the one-hot
    ov = RankSEG(to_onehot=4, unassigned_policy="void", pruning_prob=0.9)(x)
    lv = predict(x.numpy()[None], unassigned_policy="void", pruning_prob=0.9)[0]
    np.testing.assert_array_equal(ov.numpy().sum(0) == 0, lv == 255)
    sig = torch.sigmoid(torch.from_numpy(rng.standard_normal((2, 5, 6))).float())
    ml = RankSEG(output_mode="multilabel", pruning_prob=0.0)(sig)
    assert ml.shape == (2, 5, 6) and ml.dtype == torch.float32
    np.testing.assert_array_equal(
        ml.numpy().astype(bool),
        predict(sig.numpy()[None], output_mode="multilabel", pruning_prob=0.0)[0],
    )
    assert RankSEG(dtype=torch.uint8)(x).dtype == torch.uint8
    # numpy in, a tensor out (as AsDiscrete)
    assert isinstance(RankSEG()(x.numpy()), torch.Tensor)


def test_errors(rng):
    x = softmax_map(rng, (3, 4, 5))
    with pytest.raises(ValueError, match=r"to_onehot=4 but the input has 3 classes"):
        RankSEG(to_onehot=4)(x)
    with pytest.raises(TypeError, match="to_onehot must be the number of classes"):
        RankSEG(to_onehot=True)
    with pytest.raises(ValueError, match="to_onehot applies to output_mode='multiclass'"):
        RankSEG(output_mode="multilabel", to_onehot=3)
    with pytest.raises(ValueError, match=r"channel-first \(B, C, \*spatial\)"):
        RankSEG(batch=True)(x[0])
    with pytest.raises(ValueError, match="unknown metric"):
        RankSEG(metric="hausdorff")
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        RankSEG(dtype=np.float32)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]|in \[0, 1\]"):
        RankSEG()(x * 3)


def test_missing_monai_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "monai" or m.startswith("monai.")]:
        monkeypatch.setitem(sys.modules, name, None)  # None: "import monai..." fails
    monkeypatch.delitem(sys.modules, "rankseg.monai")
    with pytest.raises(ImportError, match=r"pip install 'rankseg-numba\[monai\]'"):
        importlib.import_module("rankseg.monai")
    monkeypatch.undo()
    importlib.import_module("rankseg.monai")


def _write_case(tmp_path, rng):
    affine = np.diag([1.5, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-20, 10, 5]
    img = nib.Nifti1Image(rng.random((10, 8, 6)).astype(np.float32), affine)
    nib.save(img, tmp_path / "case_001.nii.gz")
    lab = (rng.random((10, 8, 6)) * 3).astype(np.uint8)
    nib.save(nib.Nifti1Image(lab, affine), tmp_path / "case_001_label.nii.gz")
    return {
        "image": str(tmp_path / "case_001.nii.gz"),
        "label": str(tmp_path / "case_001_label.nii.gz"),
    }


@pytest.mark.filterwarnings(
    # MONAI's LoadImage/SaveImage call into nibabel/torch APIs that warn about their
    # own future changes; nothing of rankseg's
    "ignore::DeprecationWarning",
    "ignore::FutureWarning",
)
def test_compose_save_image_and_dice_metric(rng, tmp_path):
    case = _write_case(tmp_path, rng)
    pre = Compose(
        [
            LoadImaged(keys=["image", "label"], image_only=True),
            EnsureChannelFirstd(keys=["image", "label"]),
            Spacingd(keys=["image", "label"], pixdim=(2.0, 2.0, 2.0), mode=("bilinear", "nearest")),
        ]
    )
    data = pre(case)
    # a stand-in network: logits with the image's meta (as a model's output carries)
    logits = torch.from_numpy(rng.standard_normal((3, *data["image"].shape[1:])) * 3).float()
    data["pred"] = MetaTensor(
        logits, meta=data["image"].meta, applied_operations=data["image"].applied_operations
    )
    out_dir = tmp_path / "out"
    argmax_post = Compose(
        [Activationsd(keys="pred", softmax=True), AsDiscreted(keys="pred", argmax=True)]
    )
    rank_post = Compose(
        [
            Activationsd(keys="pred", softmax=True),
            RankSEGd(keys="pred", metric="dice"),
            SaveImaged(
                keys="pred",
                output_dir=str(out_dir),
                output_postfix="rankseg",
                separate_folder=False,
                print_log=False,
            ),
        ]
    )
    ref = argmax_post(dict(data))["pred"]
    got = rank_post(dict(data))["pred"]
    assert isinstance(got, MetaTensor) and got.shape == ref.shape
    torch.testing.assert_close(got.affine, data["image"].affine)
    probs = torch.softmax(logits, 0).numpy()
    np.testing.assert_array_equal(got.numpy()[0], predict(probs[None])[0])
    saved = nib.load(out_dir / "case_001_rankseg.nii.gz")
    np.testing.assert_allclose(saved.affine, data["image"].affine.numpy(), atol=1e-5)
    np.testing.assert_array_equal(
        np.asanyarray(saved.dataobj)[..., 0] if saved.ndim == 4 else np.asanyarray(saved.dataobj),
        got.numpy()[0],
    )
    # MONAI's DiceMetric on the one-hot outputs equals rankseg.metrics on the labels
    onehot = RankSEG(to_onehot=3)(torch.softmax(logits, 0))
    label = data["label"]
    lab_oh = AsDiscrete(to_onehot=3)(label)
    dm = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    score = dm(onehot[None], lab_oh[None]).numpy()[0]
    ours = dice_score(
        got.numpy()[0].astype(np.int64)[None],
        label.numpy()[0].astype(np.int64)[None],
        num_classes=3,
        empty="one",
    )[0]
    np.testing.assert_allclose(score, ours, atol=1e-6)
    # Invertd after RankSEGd: the labels go back to the raw image grid
    inv = Compose(
        [
            Activationsd(keys="pred", softmax=True),
            RankSEGd(keys="pred"),
            Invertd(
                keys="pred", transform=pre, orig_keys="image", nearest_interp=True, to_tensor=True
            ),
        ]
    )
    back = inv(dict(data))["pred"]
    assert back.shape[1:] == (10, 8, 6)
    assert set(np.unique(back.numpy())) <= {0.0, 1.0, 2.0}


def test_dict_transform_in_a_batch_pipeline(rng):
    batch = torch.stack([softmax_map(rng, (3, 5, 6)) for _ in range(2)])
    items = decollate_batch({"pred": batch})
    post = RankSEGd(keys="pred", metric="iou", smooth=1.0)
    outs = [post(item)["pred"] for item in items]
    want = predict(batch.numpy(), metric="iou", smooth=1.0)
    for b, o in enumerate(outs):
        np.testing.assert_array_equal(o.numpy()[0], want[b])
    with pytest.raises(KeyError):
        post({"other": batch[0]})
    assert "other" in RankSEGd(keys="pred", allow_missing_keys=True)({"other": 1})
