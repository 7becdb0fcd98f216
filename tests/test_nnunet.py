"""nnU-Net's own code as the oracle: its exporter writes the cases, its writer the labels.

For every I/O class (``SimpleITKIO``, ``NibabelIO``, ``NibabelIOWithReorient``) and
every one of the 48 axis orientations (6 permutations x 8 sign flips of the axes),
with anisotropic spacing and a non-zero origin, nnU-Net's
``export_prediction_from_logits(save_probabilities=True)`` writes a case into a
prediction folder as ``nnUNetv2_predict`` does.  ``rankseg predict`` then decides
the folder, and each label map must be the file nnU-Net's own ``write_seg`` writes
for the same labels: voxels, shape, dtype, spacing, origin, direction, affine,
qform/sform codes and units.  nnU-Net's evaluation must accept the folder as is.

Skipped when nnU-Net (``pip install 'rankseg-numba[test-integrations]'``) is not installed.
The volumes are tiny (4 x 5 x 6) so that 3 x 48 cases take seconds.
"""

import itertools
import json
import shutil

import numpy as np
import pytest

from rankseg import io as rio
from rankseg import predict
from rankseg.__main__ import main

from _nnunet_plans import nnunet_plans
from _optional import import_or_skip

nib = import_or_skip("nibabel")
sitk = import_or_skip("SimpleITK")
torch = import_or_skip("torch")
import_or_skip("nnunetv2")

from nnunetv2.ensembling.ensemble import average_probabilities, ensemble_folders  # noqa: E402
from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder  # noqa: E402
from nnunetv2.imageio.nibabel_reader_writer import NibabelIO, NibabelIOWithReorient  # noqa: E402
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO  # noqa: E402
from nnunetv2.inference.export_prediction import export_prediction_from_logits  # noqa: E402
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # noqa: E402

IO_CLASSES = {c.__name__: c for c in (SimpleITKIO, NibabelIO, NibabelIOWithReorient)}
SHAPE = (4, 5, 6)  # voxel axes (X, Y, Z) of the image file
SPACING = (0.8, 3.0, 0.9)
ORIGIN = (-30.0, 12.0, 8.0)
LABELS = {"background": 0, "liver": 1, "tumour": 2}
REGIONS = {"background": 0, "whole": [1, 2], "core": 2}


def orientations(ndim=3):
    """Every signed permutation of the voxel axes (48 in 3-D, 8 in 2-D)."""
    for perm in itertools.permutations(range(ndim)):
        for signs in itertools.product((1.0, -1.0), repeat=ndim):
            r = np.zeros((ndim, ndim))
            for i, (ax, sg) in enumerate(zip(perm, signs, strict=True)):
                r[ax, i] = sg  # voxel axis i runs along world axis ax
            yield r


def affine_of(r):
    a = np.eye(4)
    a[:3, :3] = r * np.asarray(SPACING)  # columns scaled by the spacing
    a[:3, 3] = ORIGIN
    return a


def plans(io_name, spacing):
    return nnunet_plans(io_name, spacing, SHAPE)


def dataset(labels=LABELS, file_ending=".nii.gz"):
    ds = {
        "channel_names": {"0": "CT"},
        "labels": labels,
        "numTraining": 1,
        "file_ending": file_ending,
    }
    if any(isinstance(v, list) for v in labels.values()):
        ds["regions_class_order"] = [1, 2]
    return ds


def write_image(path, r):
    """A raw image in orientation ``r``: NIfTI through nibabel (qform = sform, as
    scanners write), other formats and 2-D images through SimpleITK."""
    ndim = r.shape[0]
    if ndim == 3 and str(path).endswith((".nii.gz", ".nii")):
        a = affine_of(r)
        img = nib.Nifti1Image(np.zeros(SHAPE, np.float32), a)
        img.set_qform(a, code=1)
        img.set_sform(a, code=1)
        img.header.set_xyzt_units("mm", "sec")
        nib.save(img, path)
        return
    img = sitk.GetImageFromArray(np.zeros(SHAPE[:ndim][::-1], np.float32))
    img.SetSpacing(SPACING[:ndim])
    img.SetOrigin(ORIGIN[:ndim])
    lps = np.diag([-1.0, -1.0, 1.0])[:ndim, :ndim]
    img.SetDirection(tuple((lps @ r).ravel()))  # the same world orientation as the NIfTI
    sitk.WriteImage(img, str(path))


def export_case(folder, case, image, io_name, ds, logits):
    """Write a case as nnUNetv2_predict --save_probabilities does, with nnU-Net's code."""
    rw = IO_CLASSES[io_name]()
    data, props = rw.read_images([str(image)])
    shape = data.shape[1:]
    props.update(
        shape_before_cropping=shape,
        bbox_used_for_cropping=[[0, s] for s in shape],
        shape_after_cropping_and_before_resampling=shape,
    )
    pm = PlansManager(plans(io_name, props["spacing"]))
    cm = pm.get_configuration("3d_fullres")
    export_prediction_from_logits(
        torch.from_numpy(logits(shape)),
        props,
        cm,
        pm,
        ds,
        str(folder / case),
        save_probabilities=True,
        num_threads_torch=1,
    )
    return props


def write_json(folder, io_name, ds):
    # nnUNetv2_predict copies both next to the predictions
    (folder / "dataset.json").write_text(json.dumps(ds))
    (folder / "plans.json").write_text(json.dumps(plans(io_name, SPACING)))


def rankseg_labels(probs, regions):
    """What rankseg decides for the probabilities, in nnU-Net's array order."""
    if regions is None:
        return predict(probs[None])[0]
    masks = predict(probs[None], output_mode="multilabel")[0]
    seg = np.zeros(probs.shape[1:], np.uint8)
    for i, c in enumerate(regions):  # nnU-Net's regions_class_order: later regions win
        seg[masks[i]] = c
    return seg


def assert_same_image(got, want):
    """Two label-map files are the same image: header fields, geometry and voxels."""
    gi, wi = sitk.ReadImage(str(got)), sitk.ReadImage(str(want))
    assert gi.GetSize() == wi.GetSize()
    assert gi.GetPixelIDValue() == wi.GetPixelIDValue()
    np.testing.assert_allclose(gi.GetSpacing(), wi.GetSpacing(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(gi.GetOrigin(), wi.GetOrigin(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(gi.GetDirection(), wi.GetDirection(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(gi), sitk.GetArrayFromImage(wi))
    if str(want).endswith((".nii.gz", ".nii")):
        g, w = nib.load(got), nib.load(want)
        assert g.shape == w.shape
        assert g.get_data_dtype() == w.get_data_dtype()
        np.testing.assert_array_equal(np.asanyarray(g.dataobj), np.asanyarray(w.dataobj))
        np.testing.assert_array_equal(g.affine, w.affine)
        for key in ("qform_code", "sform_code", "xyzt_units", "pixdim", "dim"):
            np.testing.assert_array_equal(g.header[key], w.header[key], err_msg=key)
        np.testing.assert_array_equal(g.header.get_qform(), w.header.get_qform())
        np.testing.assert_array_equal(g.header.get_sform(), w.header.get_sform())


def build_folder(tmp_path, rng, io_name, rs, *, labels=LABELS, ending=".nii.gz", image_ending=None):
    """One nnU-Net prediction folder with a case per orientation; returns (folder, cases)."""
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    folder = tmp_path / "pred"
    folder.mkdir()
    ds = dataset(labels, ending)
    regions = ds.get("regions_class_order")
    nc = len(regions) if regions else len(labels)
    cases = {}
    for k, r in enumerate(rs):
        case = f"case_{k:02d}"
        image = raw / f"{case}_0000{image_ending or ending}"
        write_image(image, r)
        props = export_case(
            folder,
            case,
            image,
            io_name,
            ds,
            lambda shape: (rng.standard_normal((nc, *shape)) * 3).astype(np.float32),
        )
        cases[case] = props
    write_json(folder, io_name, ds)
    return folder, cases, ds


def oracle_folder(tmp_path, folder, cases, io_name, ds, name="oracle"):
    """nnU-Net's writer applied to rankseg's decisions."""
    out = tmp_path / name
    out.mkdir()
    rw = IO_CLASSES[io_name]()
    for case, props in cases.items():
        probs = np.load(folder / f"{case}.npz")["probabilities"]
        labels = rankseg_labels(probs, ds.get("regions_class_order"))
        rw.write_seg(labels, str(out / (case + ds["file_ending"])), props)
    return out


def check_against_oracle(out, oracle, cases, ending):
    wrong = []
    for case in cases:
        try:
            assert_same_image(out / (case + ending), oracle / (case + ending))
        except AssertionError as exc:
            wrong.append(f"{case}: {str(exc).splitlines()[0:6]}")
    assert not wrong, "\n".join(wrong)


def run_predict(*args):
    code = main([str(a) for a in (*args, "--quiet")])
    assert code == 0


@pytest.mark.parametrize("io_name", list(IO_CLASSES))
def test_every_orientation_matches_nnunets_writer(rng, tmp_path, io_name):
    rs = list(orientations())
    assert len(rs) == 48
    folder, cases, ds = build_folder(tmp_path, rng, io_name, rs)
    oracle = oracle_folder(tmp_path, folder, cases, io_name, ds)
    run_predict("predict", folder, "-o", tmp_path / "out")
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == sorted(
        f"{c}.nii.gz" for c in cases
    )
    check_against_oracle(tmp_path / "out", oracle, cases, ".nii.gz")

    # the case properties alone (nnU-Net's segmentation removed) give the same files
    for case in cases:
        (folder / f"{case}.nii.gz").unlink()
    run_predict("predict", folder, "-o", tmp_path / "out_pkl")
    check_against_oracle(tmp_path / "out_pkl", oracle, cases, ".nii.gz")


@pytest.mark.parametrize("io_name", ["SimpleITKIO", "NibabelIO"])
def test_segmentation_beside_the_npz_without_json(rng, tmp_path, io_name):
    """CASE.npz next to nnU-Net's CASE.nii.gz, no json and no pkl: still an nnU-Net case."""
    rs = list(orientations())[::7]  # flips, swaps and 3-cycles
    folder, cases, ds = build_folder(tmp_path, rng, io_name, rs)
    oracle = oracle_folder(tmp_path, folder, cases, io_name, ds)
    for f in ("dataset.json", "plans.json", *(f"{c}.pkl" for c in cases)):
        (folder / f).unlink()
    run_predict("predict", folder, "-o", tmp_path / "out")
    check_against_oracle(tmp_path / "out", oracle, cases, ".nii.gz")


def test_reorient_recovered_from_plans_without_pkl(rng, tmp_path):
    """No CASE.pkl, no dataset.json, but plans.json names NibabelIOWithReorient.

    The probabilities are in RAS order; nnU-Net's segmentation beside them keeps the
    original orientation, from which the reorientation is recomputed as nnU-Net's
    reader computes it.  (Without plans.json or CASE.pkl nothing records that the
    case was reoriented; see docs/cli.rst.)
    """
    rs = list(orientations())
    folder, cases, ds = build_folder(tmp_path, rng, "NibabelIOWithReorient", rs)
    oracle = oracle_folder(tmp_path, folder, cases, "NibabelIOWithReorient", ds)
    for f in ("dataset.json", *(f"{c}.pkl" for c in cases)):
        (folder / f).unlink()
    run_predict("predict", folder, "-o", tmp_path / "out")
    check_against_oracle(tmp_path / "out", oracle, cases, ".nii.gz")


@pytest.mark.parametrize("ending", [".mha", ".nrrd"])
def test_simpleitk_file_endings(rng, tmp_path, ending):
    rs = list(orientations()) if ending == ".mha" else list(orientations())[::5]
    folder, cases, ds = build_folder(tmp_path, rng, "SimpleITKIO", rs, ending=ending)
    oracle = oracle_folder(tmp_path, folder, cases, "SimpleITKIO", ds)
    run_predict("predict", folder, "-o", tmp_path / "out")
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == sorted(c + ending for c in cases)
    check_against_oracle(tmp_path / "out", oracle, cases, ending)
    for case in cases:  # the properties alone, then the segmentation alone
        (folder / f"{case}{ending}").unlink()
    run_predict("predict", folder, "-o", tmp_path / "out_pkl")
    check_against_oracle(tmp_path / "out_pkl", oracle, cases, ending)


def test_simpleitk_segmentation_geometry_without_pkl(rng, tmp_path):
    rs = list(orientations())[::5]
    folder, cases, ds = build_folder(tmp_path, rng, "SimpleITKIO", rs, ending=".mha")
    oracle = oracle_folder(tmp_path, folder, cases, "SimpleITKIO", ds)
    for c in cases:
        (folder / f"{c}.pkl").unlink()
    run_predict("predict", folder, "-o", tmp_path / "out")
    check_against_oracle(tmp_path / "out", oracle, cases, ".mha")


@pytest.mark.parametrize("ending", [".nii.gz", ".mha"])
def test_two_d_cases(rng, tmp_path, ending):
    rs = list(orientations(2))
    assert len(rs) == 8
    folder, cases, ds = build_folder(tmp_path, rng, "SimpleITKIO", rs, ending=ending)
    probs = np.load(folder / "case_00.npz")["probabilities"]
    assert probs.shape == (3, 1, 5, 4)  # nnU-Net stores a 2-D case as (C, 1, Y, X)
    oracle = oracle_folder(tmp_path, folder, cases, "SimpleITKIO", ds)
    run_predict("predict", folder, "-o", tmp_path / "out")
    check_against_oracle(tmp_path / "out", oracle, cases, ending)
    for case in cases:
        (folder / f"{case}{ending}").unlink()
    run_predict("predict", folder, "-o", tmp_path / "out_pkl")
    check_against_oracle(tmp_path / "out_pkl", oracle, cases, ending)


@pytest.mark.parametrize("io_name", list(IO_CLASSES))
def test_region_based_dataset(rng, tmp_path, io_name):
    rs = list(orientations())[::3]
    folder, cases, ds = build_folder(tmp_path, rng, io_name, rs, labels=REGIONS)
    assert ds["regions_class_order"] == [1, 2]
    oracle = oracle_folder(tmp_path, folder, cases, io_name, ds)
    run_predict("predict", folder, "-o", tmp_path / "out")
    check_against_oracle(tmp_path / "out", oracle, cases, ".nii.gz")


@pytest.mark.parametrize(
    "io_name, ending", [(name, ".nii.gz") for name in IO_CLASSES] + [("SimpleITKIO", ".mha")]
)
def test_nnunet_evaluation_accepts_the_folder(rng, tmp_path, io_name, ending):
    rs = list(orientations())[::6]
    folder, cases, ds = build_folder(tmp_path, rng, io_name, rs, ending=ending)
    oracle = oracle_folder(tmp_path, folder, cases, io_name, ds)
    run_predict("predict", folder, "-o", tmp_path / "out")
    # rankseg's own evaluation reads the files too (.mha through SimpleITK)
    run_predict("evaluate", tmp_path / "out", "--target", oracle, "--csv", tmp_path / "e.csv")
    for case in cases:
        np.testing.assert_array_equal(
            rio.load_labels(tmp_path / "out" / (case + ending)),
            rio.load_labels(oracle / (case + ending)),
        )
    result = compute_metrics_on_folder(
        str(oracle),
        str(tmp_path / "out"),
        None,
        IO_CLASSES[io_name](),
        ending,
        [1, 2],
        num_processes=1,
    )
    assert len(result["metric_per_case"]) == len(cases)
    for row in result["metric_per_case"]:
        for label in (1, 2):
            m = row["metrics"][label]
            assert m["FP"] == 0 and m["FN"] == 0  # the same voxels, read by nnU-Net


def test_ensemble_matches_nnunet_ensemble(rng, tmp_path):
    """rankseg predict --ensemble == RankSEG on nnUNetv2_ensemble's averaged probabilities."""
    io_name = "NibabelIOWithReorient"
    rs = list(orientations())[::9]
    folds = []
    for k in range(3):
        sub = tmp_path / f"fold{k}"
        sub.mkdir()
        folder, cases, ds = build_folder(sub, rng, io_name, rs)
        folds.append(folder)
    # nnU-Net's own ensemble, keeping the averaged probabilities
    merged = tmp_path / "merged"
    ensemble_folders([str(f) for f in folds], str(merged), True, 1)
    for case in cases:
        want = average_probabilities([str(f / f"{case}.npz") for f in folds])
        np.testing.assert_array_equal(np.load(merged / f"{case}.npz")["probabilities"], want)
    run_predict("predict", *folds, "--ensemble", "-o", tmp_path / "out")
    # deciding nnU-Net's merged folder gives the same files
    for case in cases:
        (merged / f"{case}.nii.gz").unlink()
    run_predict("predict", merged, "-o", tmp_path / "out_merged")
    check_against_oracle(tmp_path / "out", tmp_path / "out_merged", cases, ".nii.gz")
    oracle = oracle_folder(tmp_path, merged, cases, io_name, ds)
    check_against_oracle(tmp_path / "out", oracle, cases, ".nii.gz")
    # a case missing from one fold fails alone; the others are written
    shutil.move(folds[1] / "case_00.npz", tmp_path / "case_00.npz")
    code = main(["predict", *map(str, folds), "--ensemble", "-o", str(tmp_path / "o2"), "--quiet"])
    assert code == 1
    assert sorted(f.name for f in (tmp_path / "o2").iterdir()) == sorted(
        f"{c}.nii.gz" for c in cases if c != "case_00"
    )
