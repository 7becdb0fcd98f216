"""rankseg.integration.sam against the SAM processors of Hugging Face Transformers.

SAM: a tiny randomly initialised ``SamModel`` (no downloaded weights) on a random image
preprocessed (resized and padded) by ``SamImageProcessorPil``; with ``metric='acc'``
``Sam1.postprocess`` must be the processor's ``post_process_masks``.

SAM2 and SAM3: their image processors import torchvision, which the test environment
does not have (CI uninstalls it, .ci/run), and tiny SAM2/SAM3 models need much more
configuration; their outputs are made with the real output classes from random tensors
of the models' output shapes, and the oracle is the processor's own post-processing
code: the processor itself when torchvision imports, else its methods read from the
installed transformers source (``_processor_methods``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rankseg import RankSEG  # noqa: E402
from rankseg.integration.sam import Sam1, Sam2, Sam3  # noqa: E402

ACC = {"metric": "acc"}


def _processor_methods(module: str, cls: str, names: tuple[str, ...], helpers: tuple[str, ...]):
    """A stand-in for ``module.cls`` holding its methods ``names``, as transformers has them.

    With torchvision the real class is returned.  Without it the module cannot be
    imported (it imports ``torchvision.ops`` at the top), so the methods and the module
    functions ``helpers`` they call are compiled from the installed source file.
    """
    try:
        return getattr(importlib.import_module(module), cls)()
    except ImportError:
        pass
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    namespace = {"__name__": module, "__package__": spec.parent}
    wanted = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:  # the module's own imports, all but torchvision's
                exec(
                    compile(ast.Module(body=[node], type_ignores=[]), spec.origin, "exec"),
                    namespace,
                )
            except ImportError:
                pass
        if isinstance(node, ast.FunctionDef) and node.name in helpers:
            wanted.append(node)
        if isinstance(node, ast.ClassDef) and node.name == cls:
            methods = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name in names]
            for m in methods:
                m.decorator_list = []
            assert {m.name for m in methods} == set(names), "transformers moved the oracle"
            node.bases, node.keywords, node.decorator_list, node.body = [], [], [], methods
            wanted.append(node)
    exec(compile(ast.Module(body=wanted, type_ignores=[]), spec.origin, "exec"), namespace)
    return namespace[cls]()


def _sam2_processor():
    return _processor_methods(
        "transformers.models.sam2.image_processing_sam2",
        "Sam2ImageProcessor",
        ("post_process_masks", "_apply_non_overlapping_constraints"),
        (),
    )


def _sam3_processor():
    return _processor_methods(
        "transformers.models.sam3.image_processing_sam3",
        "Sam3ImageProcessor",
        ("post_process_instance_segmentation", "post_process_semantic_segmentation"),
        ("_scale_boxes",),
    )


# -- SAM (tiny model) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sam_run():
    """``(processor, inputs, outputs)`` of a tiny SamModel on two random images."""
    torch.manual_seed(0)
    config = transformers.SamConfig(
        vision_config={
            "hidden_size": 16,
            "output_channels": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 8,
            "mlp_dim": 16,
            "global_attn_indexes": [0],
            "window_size": 4,
            "num_pos_feats": 4,
        },
        prompt_encoder_config={
            "hidden_size": 8,
            "image_size": 64,
            "patch_size": 8,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "mlp_dim": 16,
            "iou_head_hidden_dim": 8,
        },
    )
    model = transformers.SamModel(config).eval()
    processor = transformers.SamImageProcessorPil(
        size={"longest_edge": 64}, pad_size={"height": 64, "width": 64}
    )
    rng = np.random.default_rng(3)
    images = [
        rng.integers(0, 256, size=(40, 52, 3), dtype=np.uint8),
        rng.integers(0, 256, size=(50, 30, 3), dtype=np.uint8),
    ]
    inputs = processor(images=images, return_tensors="pt")
    points = torch.tensor([[[[10.0, 20.0], [30.0, 12.0]]], [[[5.0, 5.0], [20.0, 40.0]]]])
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"], input_points=points)
    return processor, inputs, outputs


@pytest.fixture(scope="module")
def sam_scaled(sam_run):
    """``sam_run`` with the mask logits scaled by 1e5 (signs, hence the masks, kept).

    A randomly initialised SAM's mask logits are about 1e-6, where the float32 sigmoid
    is exactly 0.5: ``p > 0.5`` and the processor's ``logit > 0`` part there
    (``test_sam1_tiny_logits``); trained models' logits are far from 0.
    """
    from transformers.models.sam.modeling_sam import SamImageSegmentationOutput

    processor, inputs, outputs = sam_run
    assert float(outputs.pred_masks.abs().max()) < 1e-3
    scaled = SamImageSegmentationOutput(
        iou_scores=outputs.iou_scores, pred_masks=outputs.pred_masks * 1e5
    )
    return processor, inputs, scaled


def test_sam1_padded_geometry_is_the_processors(sam_scaled):
    processor, inputs, outputs = sam_scaled
    original, reshaped = inputs["original_sizes"], inputs["reshaped_input_sizes"]
    assert reshaped.tolist() == [[49, 64], [64, 38]]  # the padding is really cropped
    adapter = Sam1(rankseg_kwargs=ACC, pad_size=processor.pad_size)
    got = adapter.postprocess(outputs, original_sizes=original, reshaped_input_sizes=reshaped)
    expected = processor.post_process_masks(outputs.pred_masks, original, reshaped)
    logits = processor.post_process_masks(outputs.pred_masks, original, reshaped, binarize=False)
    probs = adapter.restore_mask_probs(
        outputs, original_sizes=original, reshaped_input_sizes=reshaped
    )
    for g, e, lg, p, size in zip(got, expected, logits, probs, original.tolist(), strict=True):
        assert g.shape == e.shape == (1, 3, *size) and g.dtype == torch.bool
        assert 0 < int(e.sum()) < e.numel()  # a test of something: both classes occur
        assert torch.equal(g, e)
        torch.testing.assert_close(p, lg.sigmoid())
    # sizes as lists of pairs and pad_size as a pair say the same
    again = Sam1(rankseg_kwargs=ACC, pad_size=(64, 64)).postprocess(
        outputs, original_sizes=original.tolist(), reshaped_input_sizes=reshaped.tolist()
    )
    assert all(torch.equal(a, b) for a, b in zip(again, got, strict=True))


def test_sam1_dice_is_rankseg_on_the_restored_probabilities(sam_scaled):
    processor, inputs, outputs = sam_scaled
    sizes = {
        "original_sizes": inputs["original_sizes"],
        "reshaped_input_sizes": inputs["reshaped_input_sizes"],
    }
    adapter = Sam1(rankseg_kwargs={"metric": "dice", "solver": "RMA"}, pad_size=processor.pad_size)
    probs = adapter.restore_mask_probs(outputs, **sizes)
    for got, p in zip(adapter.postprocess(outputs, **sizes), probs, strict=True):
        expected = RankSEG(metric="dice", output_mode="multilabel").predict(p.numpy())
        np.testing.assert_array_equal(got.numpy(), expected)


def test_sam1_tiny_logits(sam_run):
    # the model's own logits: the masks differ from the processor's only where the
    # float32 sigmoid of a positive logit rounds to 0.5 (p > 0.5 is False there)
    processor, inputs, outputs = sam_run
    sizes = {
        "original_sizes": inputs["original_sizes"],
        "reshaped_input_sizes": inputs["reshaped_input_sizes"],
    }
    adapter = Sam1(rankseg_kwargs=ACC, pad_size=processor.pad_size)
    got = adapter.postprocess(outputs, **sizes)
    logits = processor.post_process_masks(outputs.pred_masks, *sizes.values(), binarize=False)
    for g, lg in zip(got, logits, strict=True):
        differ = g != (lg > 0)
        assert torch.equal(differ, (lg > 0) & (lg.sigmoid() == 0.5))


def test_sam1_default_pad_size_is_1024():
    logits = torch.randn(1, 1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    processor = transformers.SamImageProcessorPil()
    assert processor.pad_size == {"height": 1024, "width": 1024}
    sizes = {"original_sizes": [(30, 40)], "reshaped_input_sizes": [(768, 1024)]}
    got = Sam1(rankseg_kwargs=ACC).postprocess({"pred_masks": logits}, **sizes)
    expected = processor.post_process_masks(
        logits, sizes["original_sizes"], sizes["reshaped_input_sizes"]
    )
    assert torch.equal(got[0], expected[0])


# -- SAM2 (output-shaped tensors) ----------------------------------------------------


def _sam2_outputs(seed: int):
    from transformers.models.sam2.modeling_sam2 import Sam2ImageSegmentationOutput

    gen = torch.Generator().manual_seed(seed)
    # (B, objects, masks per object, 256/4, 256/4) at a tenth of the size
    return Sam2ImageSegmentationOutput(pred_masks=4 * torch.randn(2, 3, 1, 16, 16, generator=gen))


@pytest.mark.parametrize("non_overlap", [False, True])
def test_sam2_is_the_processors_post_process_masks(non_overlap):
    outputs = _sam2_outputs(4)
    sizes = [(40, 30), (24, 36)]
    processor = _sam2_processor()
    expected = processor.post_process_masks(
        outputs.pred_masks, sizes, apply_non_overlapping_constraints=non_overlap
    )
    adapter = Sam2(rankseg_kwargs=ACC, apply_non_overlapping_constraints=non_overlap)
    got = adapter.postprocess(outputs, original_sizes=sizes)
    for g, e, size in zip(got, expected, sizes, strict=True):
        assert g.shape == e.shape == (3, 1, *size) and g.dtype == torch.bool
        assert torch.equal(g, e)
        overlap = int((g.sum(0) > 1).sum())
        assert overlap == 0 if non_overlap else overlap > 0
    probs = adapter.restore_mask_probs(outputs, original_sizes=torch.tensor(sizes))
    dice = Sam2(
        rankseg_kwargs={"metric": "dice"}, apply_non_overlapping_constraints=non_overlap
    ).postprocess(outputs, original_sizes=sizes)
    for d, p in zip(dice, probs, strict=True):
        expected = RankSEG(metric="dice", output_mode="multilabel").predict(p.numpy())
        np.testing.assert_array_equal(d.numpy(), expected)


# -- SAM3 (output-shaped tensors) ----------------------------------------------------


def _sam3_outputs(seed: int, presence: bool = True):
    from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput

    gen = torch.Generator().manual_seed(seed)
    boxes = torch.rand(2, 6, 4, generator=gen).sort(dim=-1).values  # relative xyxy
    return Sam3ImageSegmentationOutput(
        pred_masks=4 * torch.randn(2, 6, 12, 12, generator=gen),
        pred_boxes=boxes[..., [0, 1, 2, 3]],
        pred_logits=2 * torch.randn(2, 6, generator=gen),
        presence_logits=torch.randn(2, 1, generator=gen) if presence else None,
        semantic_seg=4 * torch.randn(2, 1, 12, 12, generator=gen),
    )


@pytest.mark.parametrize("presence", [True, False])
@pytest.mark.parametrize("resize", [True, False])
def test_sam3_instances_are_the_processors(presence, resize):
    outputs = _sam3_outputs(5, presence)
    sizes = [(30, 20), (16, 24)] if resize else None
    expected = _sam3_processor().post_process_instance_segmentation(
        outputs, threshold=0.3, target_sizes=sizes
    )
    got = Sam3(rankseg_kwargs=ACC).postprocess_instance(outputs, target_sizes=sizes)
    assert len(got) == len(expected) == 2
    assert sum(len(r["scores"]) for r in got) > 0
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g["scores"], e["scores"])
        torch.testing.assert_close(g["boxes"], e["boxes"])
        assert g["masks"].dtype == torch.bool
        assert torch.equal(g["masks"], e["masks"].bool())
    # original_sizes stands in for target_sizes
    if resize:
        again = Sam3(rankseg_kwargs=ACC).postprocess_instance(outputs, original_sizes=sizes)
        assert all(torch.equal(a["masks"], g["masks"]) for a, g in zip(again, got, strict=True))


def test_sam3_instance_dice_and_empty_images():
    outputs = _sam3_outputs(6)
    adapter = Sam3(rankseg_kwargs={"metric": "dice"}, threshold=0.2)
    restored = adapter.restore_instance_mask_probs(outputs, target_sizes=[(20, 20), (20, 20)])
    got = adapter.postprocess_instance(outputs, target_sizes=[(20, 20), (20, 20)])
    for g, r in zip(got, restored, strict=True):
        expected = RankSEG(metric="dice", output_mode="multilabel").predict(
            r["mask_probs"][:, None].numpy()
        )[:, 0]
        np.testing.assert_array_equal(g["masks"].numpy(), expected)
    nothing = Sam3(threshold=1.0).postprocess_instance(outputs, target_sizes=[(20, 20)] * 2)
    for r in nothing:
        assert r["masks"].shape == (0, 12, 12) and r["masks"].dtype == torch.bool
        assert r["scores"].shape == (0,) and r["boxes"].shape == (0, 4)


@pytest.mark.parametrize("sizes", [[(30, 20), (16, 24)], None])
def test_sam3_semantic_is_the_processors(sizes):
    outputs = _sam3_outputs(7)
    expected = _sam3_processor().post_process_semantic_segmentation(outputs, target_sizes=sizes)
    got = Sam3(rankseg_kwargs=ACC).postprocess_semantic(outputs, target_sizes=sizes)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == torch.bool and g.shape == e.shape
        assert 0 < int(e.sum()) < e.numel()
        assert torch.equal(g, e.bool())
    probs = Sam3().restore_semantic_mask_probs(outputs, target_sizes=sizes)
    dice = Sam3(rankseg_kwargs={"metric": "dice"}).postprocess_semantic(outputs, target_sizes=sizes)
    for d, p in zip(dice, probs, strict=True):
        expected = RankSEG(metric="dice", output_mode="multilabel").predict(p[None].numpy())[0, 0]
        np.testing.assert_array_equal(d.numpy(), expected)


# -- errors --------------------------------------------------------------------------


def test_adapters_refuse_another_generations_output():
    with pytest.raises(ValueError, match="Sam1 cannot decide a Sam2ImageSegmentationOutput"):
        Sam1().postprocess(
            _sam2_outputs(0), original_sizes=[(4, 4)] * 2, reshaped_input_sizes=[(4, 4)] * 2
        )
    with pytest.raises(ValueError, match="Sam2 cannot decide a Sam3ImageSegmentationOutput"):
        Sam2().postprocess(_sam3_outputs(0), original_sizes=[(4, 4)] * 2)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Sam1(rankseg_kwargs={"output_mode": "multiclass"}), ValueError, "multilabel"),
        (lambda: Sam1(rankseg_kwargs={"output_mode": 1}), TypeError, "multilabel"),
        (lambda: Sam1(rankseg_kwargs=[1]), ValueError, "dictionary"),
        (lambda: Sam1(pad_size=(8, 2)), ValueError, "do not fit in pad_size"),
        (lambda: Sam1(pad_size={"height": 8}), ValueError, "'height' and 'width'"),
    ],
)
def test_sam1_bad_parameters(make, error, match):
    outputs = {"pred_masks": torch.zeros(1, 1, 1, 4, 4)}
    with pytest.raises(error, match=match):
        make().postprocess(outputs, original_sizes=[(4, 4)], reshaped_input_sizes=[(4, 4)])


@pytest.mark.parametrize(
    ("outputs", "sizes", "error", "match"),
    [
        ({}, [(4, 4)], ValueError, "needs outputs.pred_masks"),
        ({"pred_masks": torch.zeros(1, 4, 4)}, [(4, 4)], ValueError, "shape"),
        ({"pred_masks": torch.zeros(1, 0, 4, 4)}, [(4, 4)], ValueError, "empty"),
        (
            {"pred_masks": torch.zeros(1, 1, 4, 4, dtype=torch.int32)},
            [(4, 4)],
            TypeError,
            "floating",
        ),
        ({"pred_masks": torch.full((1, 1, 4, 4), float("inf"))}, [(4, 4)], ValueError, "finite"),
        ({"pred_masks": torch.zeros(1, 1, 4, 4)}, None, ValueError, "original_sizes is required"),
        (
            {"pred_masks": torch.zeros(1, 1, 4, 4)},
            [(4, 4), (4, 4)],
            ValueError,
            "one size per image",
        ),
        ({"pred_masks": torch.zeros(1, 1, 4, 4)}, [(4, -1)], ValueError, "positive"),
        ({"pred_masks": torch.zeros(1, 1, 4, 4)}, [(4, 4.5)], TypeError, "integers"),
        (
            {"pred_masks": torch.zeros(1, 1, 4, 4)},
            torch.tensor([[4.0, 4.0]]),
            TypeError,
            "integer dtype",
        ),
        ((torch.zeros(1, 1, 4, 4),), [(4, 4)], ValueError, "tuple/list"),
    ],
)
def test_sam2_bad_outputs(outputs, sizes, error, match):
    with pytest.raises(error, match=match):
        Sam2().restore_mask_probs(outputs, original_sizes=sizes)


def test_sam2_and_sam3_bad_parameters():
    with pytest.raises(TypeError, match="apply_non_overlapping_constraints must be a bool"):
        Sam2(apply_non_overlapping_constraints=1)
    for bad, error in [
        (1.5, ValueError),
        (float("nan"), ValueError),
        ("0.3", TypeError),
        (True, TypeError),
    ]:
        with pytest.raises(error, match="threshold"):
            Sam3(threshold=bad)
    outputs = _sam3_outputs(1)
    with pytest.raises(ValueError, match="need outputs.semantic_seg"):
        Sam3().postprocess_semantic({"pred_masks": outputs.pred_masks})
    with pytest.raises(ValueError, match=r"shape \(B, 1, H, W\)"):
        Sam3().postprocess_semantic({"semantic_seg": torch.zeros(1, 2, 4, 4)})
    with pytest.raises(ValueError, match="same batch and query"):
        Sam3().postprocess_instance(
            {
                "pred_logits": outputs.pred_logits,
                "pred_boxes": outputs.pred_boxes[:, :3],
                "pred_masks": outputs.pred_masks,
            }
        )
    with pytest.raises(ValueError, match=r"presence_logits must have shape \(B, 1\)"):
        Sam3().postprocess_instance(
            {
                "pred_logits": outputs.pred_logits,
                "pred_boxes": outputs.pred_boxes,
                "pred_masks": outputs.pred_masks,
                "presence_logits": torch.zeros(2),
            }
        )


def test_inputs_are_not_modified_and_gradients_flow():
    logits = torch.randn(1, 2, 1, 6, 6, requires_grad=True)
    before = logits.detach().clone()
    adapter = Sam2(apply_non_overlapping_constraints=True)
    (probs,) = adapter.restore_mask_probs({"pred_masks": logits}, original_sizes=[(9, 9)])
    probs.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    (masks,) = adapter.postprocess({"pred_masks": logits}, original_sizes=(9, 9))
    assert not masks.requires_grad and masks.shape == (2, 1, 9, 9)
    assert torch.equal(logits.detach(), before)
