"""rankseg.integration.transformers against the image processors of Hugging Face Transformers.

Tiny randomly initialised models built from configs (no downloaded weights) are run on
small random images preprocessed by their processors (built from constructors); with
``metric='acc'`` the adapter's labels must be the processor's own
``post_process_semantic_segmentation``, and with ``metric='dice'`` they must be
``rankseg.RankSEG(metric='dice').predict`` of the restored probabilities.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rankseg import RankSEG  # noqa: E402
from rankseg.integration.transformers import postprocess, restore_semantic_probs  # noqa: E402

ACC = {"metric": "acc"}


def _image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _segformer():
    config = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        num_attention_heads=[1, 1],
        patch_sizes=[3, 3],
        strides=[2, 2],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=4,
    )
    return transformers.SegformerForSemanticSegmentation(config), 32


def _upernet():
    backbone = transformers.ConvNextConfig(
        hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, out_features=["stage1", "stage2"]
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone,
        hidden_size=16,
        num_labels=4,
        pool_scales=[1, 2],
        use_auxiliary_head=False,
    )
    return transformers.UperNetForSemanticSegmentation(config), 32


def _beit():
    config = transformers.BeitConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        out_indices=[1, 2, 3, 4],
        num_labels=4,
        use_auxiliary_head=False,
        pool_scales=[1, 2],
    )
    return transformers.BeitForSemanticSegmentation(config), 32


def _swin():
    return transformers.SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=2,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )


def _maskformer():
    decoder = {
        "model_type": "detr",
        "d_model": 16,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 16,
        "decoder_ffn_dim": 16,
        "num_queries": 5,
    }
    config = transformers.MaskFormerConfig(
        backbone_config=_swin(),
        decoder_config=decoder,
        num_labels=4,
        fpn_feature_size=32,  # GroupNorm(32, ...) in its pixel decoder
        mask_feature_size=32,
        num_queries=5,
    )
    return transformers.MaskFormerForInstanceSegmentation(config), 64


def _mask2former():
    config = transformers.Mask2FormerConfig(
        backbone_config=_swin(),
        num_labels=4,
        feature_size=32,
        mask_feature_size=32,
        hidden_dim=32,
        encoder_feedforward_dim=16,
        dim_feedforward=16,
        num_queries=5,
        encoder_layers=1,
        decoder_layers=2,
        num_attention_heads=2,
    )
    return transformers.Mask2FormerForUniversalSegmentation(config), 64


def _processor(name: str, side: int):
    size = {"height": side, "width": side}
    if name in ("maskformer", "mask2former"):
        cls = (
            transformers.MaskFormerImageProcessorPil
            if name == "maskformer"
            else transformers.Mask2FormerImageProcessorPil
        )
        return cls(size=size, do_pad=False)
    if name == "beit":
        return transformers.BeitImageProcessorPil(size=size, do_center_crop=False)
    return transformers.SegformerImageProcessorPil(size=size)


MODELS = {
    "segformer": _segformer,
    "upernet": _upernet,
    "beit": _beit,
    "maskformer": _maskformer,
    "mask2former": _mask2former,
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def run(request):
    """``(name, model, processor, outputs, target_sizes)`` of two random images."""
    torch.manual_seed(0)
    model, side = MODELS[request.param]()
    model.eval()
    processor = _processor(request.param, side)
    rng = np.random.default_rng(7)
    images = [_image(rng, 40, 48), _image(rng, 36, 30)]
    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"])
    return request.param, model, processor, outputs, [(40, 48), (36, 30)]


def test_acc_is_the_processors_semantic_segmentation(run):
    name, model, processor, outputs, sizes = run
    for target_sizes in (sizes, None):
        expected = processor.post_process_semantic_segmentation(outputs, target_sizes=target_sizes)
        got = postprocess(outputs, target_sizes=target_sizes, rankseg_kwargs=ACC)
        assert len(got) == len(expected) == 2
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == torch.int64 and g.shape == e.shape
            assert torch.equal(g, e), name
    # sizes as a tensor (B, 2), as the processors accept
    tensor_sizes = torch.tensor(sizes)
    got = postprocess(outputs, target_sizes=tensor_sizes, rankseg_kwargs=ACC)
    expected = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


def test_probabilities_are_the_processors_scores_normalized(run):
    name, _, processor, outputs, sizes = run
    scores = processor.post_process_semantic_segmentation(
        outputs, target_sizes=sizes, return_segmentation_scores=True
    )
    probs = restore_semantic_probs(outputs, target_sizes=sizes)
    for p, s in zip(probs, scores, strict=True):
        assert p.shape == s.segmentation_scores.shape == (4, *p.shape[1:])
        assert p.dtype == torch.float32
        torch.testing.assert_close(p.sum(0), torch.ones_like(p[0]))
        assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
        expected = s.segmentation_scores
        if name in ("segformer", "upernet", "beit"):
            expected = expected.softmax(0)  # the processors keep the logits
        else:
            expected = expected / expected.sum(0, keepdim=True)
        torch.testing.assert_close(p, expected)


def test_dice_is_rankseg_on_the_restored_probabilities(run):
    name, _, _, outputs, sizes = run
    probs = restore_semantic_probs(outputs, target_sizes=sizes)
    got = postprocess(outputs, target_sizes=sizes, rankseg_kwargs={"metric": "dice"})
    for g, p in zip(got, probs, strict=True):
        expected = RankSEG(metric="dice").predict(p.unsqueeze(0).numpy())[0]
        assert g.dtype == torch.int64
        np.testing.assert_array_equal(g.numpy(), expected)
    # multilabel masks and the torch package's spellings of the same call
    masks = postprocess(
        outputs,
        target_sizes=sizes,
        rankseg_kwargs={
            "metric": "Dice",
            "solver": "RMA",
            "output_mode": "multilabel",
            "safe_screening": "auto",
        },
    )
    for m, p in zip(masks, probs, strict=True):
        expected = RankSEG(metric="dice", output_mode="multilabel").predict(p[None].numpy())[0]
        assert m.dtype == torch.bool and m.shape == p.shape
        np.testing.assert_array_equal(m.numpy(), expected)


def test_mask2former_is_recognized_by_its_model_when_the_output_is_a_dict():
    torch.manual_seed(1)
    model, side = _mask2former()
    processor = _processor("mask2former", side)
    image = _image(np.random.default_rng(2), 40, 48)
    with torch.no_grad():
        outputs = model.eval()(**processor(images=[image], return_tensors="pt"))
    sizes = [(40, 48)]
    fields = {
        "class_queries_logits": outputs.class_queries_logits,
        "masks_queries_logits": outputs.masks_queries_logits,
    }
    expected = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    got = postprocess(fields, model=model, target_sizes=sizes, rankseg_kwargs=ACC)
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))
    # without the model the masks are not resized to 384 x 384 first
    plain = restore_semantic_probs(fields, target_sizes=sizes)
    known = restore_semantic_probs(fields, model=model, target_sizes=sizes)
    assert not torch.allclose(plain[0], known[0])


def _detr_outputs(seed: int, queries: int = 6, classes: int = 3):
    from transformers.models.detr.modeling_detr import DetrSegmentationOutput

    gen = torch.Generator().manual_seed(seed)
    return DetrSegmentationOutput(
        logits=torch.randn(2, queries, classes + 1, generator=gen),
        pred_boxes=None,
        pred_masks=3 * torch.randn(2, queries, 12, 10, generator=gen),
    )


def test_detr_family_output():
    # DETR's segmentation head needs a ResNet/timm backbone: its output fields are made
    # with the real output class and decided against the real processor
    processor = transformers.DetrImageProcessorPil()
    outputs = _detr_outputs(3)
    sizes = [(25, 20), (12, 10)]
    expected = processor.post_process_semantic_segmentation(outputs, target_sizes=sizes)
    got = postprocess(outputs, target_sizes=sizes, rankseg_kwargs=ACC)
    assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))
    probs = restore_semantic_probs(outputs, target_sizes=sizes)
    assert [tuple(p.shape) for p in probs] == [(3, 25, 20), (3, 12, 10)]
    dice = postprocess(outputs, target_sizes=sizes, rankseg_kwargs={"metric": "iou"})
    for d, p in zip(dice, probs, strict=True):
        np.testing.assert_array_equal(d.numpy(), RankSEG(metric="iou").predict(p[None].numpy())[0])


def test_one_class_heads():
    # one channel: a sigmoid (semantic head) and a clip to [0, 1] (query head), multilabel
    logits = torch.tensor([[[[-2.0, 0.5, 3.0]]]])
    (probs,) = restore_semantic_probs({"logits": logits})
    torch.testing.assert_close(probs, logits[0].sigmoid())
    (mask,) = postprocess({"logits": logits}, rankseg_kwargs={"metric": "acc"})
    assert mask.dtype == torch.bool and mask.tolist() == [[[False, True, True]]]
    query = {
        "class_queries_logits": torch.tensor([[[5.0, -5.0], [5.0, -5.0]]]),
        "masks_queries_logits": torch.full((1, 2, 1, 2), 6.0),
    }
    (probs,) = restore_semantic_probs(query)
    assert probs.shape == (1, 1, 2) and float(probs.max()) == 1.0  # the sum passes 1: clipped


def test_gradients_flow_and_inputs_are_not_modified():
    logits = torch.randn(1, 3, 5, 4, requires_grad=True)
    before = logits.detach().clone()
    (probs,) = restore_semantic_probs({"logits": logits}, target_sizes=[(9, 7)])
    probs[1].sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    (labels,) = postprocess({"logits": logits}, target_sizes=[(9, 7)])
    assert not labels.requires_grad and labels.shape == (9, 7)
    assert torch.equal(logits.detach(), before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_logit_dtypes(dtype):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 6, 6, generator=gen).to(dtype)
    (probs,) = restore_semantic_probs({"logits": logits})
    assert probs.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    (labels,) = postprocess({"logits": logits}, rankseg_kwargs={"metric": "dice"})
    expected = RankSEG(metric="dice").predict(probs[None].numpy())[0]
    np.testing.assert_array_equal(labels.numpy(), expected)


def test_rankseg_kwargs_are_not_modified_and_safe_screening_changes_nothing():
    logits = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    outputs = {"logits": logits}
    kwargs = {"metric": "DICE", "solver": "Rma", "safe_screening": True}
    copy = dict(kwargs)
    got = postprocess(outputs, rankseg_kwargs=kwargs)
    assert kwargs == copy
    plain = postprocess(outputs, rankseg_kwargs={"metric": "dice"})
    assert all(torch.equal(a, b) for a, b in zip(got, plain, strict=True))
    accuracy = postprocess(outputs, rankseg_kwargs={"metric": "Accuracy", "solver": "ARGMAX"})
    assert all(torch.equal(a, logits[i].argmax(0)) for i, a in enumerate(accuracy))


@pytest.mark.parametrize(
    ("outputs", "kwargs", "error", "match"),
    [
        ((torch.zeros(1, 2, 3, 3),), {}, ValueError, "tuple/list"),
        ({"pred_masks": torch.zeros(1, 2, 3, 3)}, {}, ValueError, "pred_masks alone"),
        ({"foo": 1}, {}, ValueError, "unsupported outputs"),
        ({"logits": torch.zeros(1, 2, 3)}, {}, ValueError, r"shape \(B, C, H, W\)"),
        ({"logits": torch.zeros(1, 0, 3, 3)}, {}, ValueError, "no class channel"),
        ({"logits": torch.zeros(1, 2, 0, 3)}, {}, ValueError, "empty spatial"),
        ({"logits": torch.zeros(1, 2, 3, 3, dtype=torch.int64)}, {}, TypeError, "floating"),
        ({"logits": np.zeros((1, 2, 3, 3))}, {}, TypeError, "torch.Tensor"),
        ({"logits": torch.full((1, 2, 3, 3), float("nan"))}, {}, ValueError, "finite"),
        (
            {"logits": torch.zeros(1, 2, 3, 3)},
            {"target_sizes": [(4, 4), (4, 4)]},
            ValueError,
            "one .height, width. pair per image",
        ),
        (
            {"logits": torch.zeros(1, 2, 3, 3)},
            {"target_sizes": [(4.0, 4)]},
            TypeError,
            "two integers",
        ),
        ({"logits": torch.zeros(1, 2, 3, 3)}, {"target_sizes": [(0, 4)]}, ValueError, "positive"),
        (
            {"logits": torch.zeros(1, 2, 3, 3)},
            {"target_sizes": torch.tensor([[4.0, 4.0]])},
            TypeError,
            "integer dtype",
        ),
        (
            {"pred_masks": torch.zeros(1, 2, 3, 3), "iou_scores": torch.zeros(1, 2)},
            {},
            ValueError,
            "rankseg.integration.sam",
        ),
        ({"semantic_seg": torch.zeros(1, 1, 3, 3)}, {}, ValueError, "rankseg.integration.sam"),
        (
            {
                "class_queries_logits": torch.zeros(1, 2, 3),
                "masks_queries_logits": torch.zeros(1, 3, 4, 4),
            },
            {},
            ValueError,
            "same batch and query",
        ),
        (
            {
                "class_queries_logits": torch.zeros(1, 2, 1),
                "masks_queries_logits": torch.zeros(1, 2, 4, 4),
            },
            {},
            ValueError,
            "null class",
        ),
        (
            {
                "class_queries_logits": torch.zeros(1, 2, 3),
                "masks_queries_logits": torch.zeros(1, 2, 4, 4),
                "patch_offsets": None,
            },
            {},
            ValueError,
            "EoMT",
        ),
    ],
)
def test_bad_outputs_raise_clear_errors(outputs, kwargs, error, match):
    with pytest.raises(error, match=match):
        restore_semantic_probs(outputs, **kwargs)


def test_sam_output_classes_are_refused():
    from transformers.models.sam.modeling_sam import SamImageSegmentationOutput

    outputs = SamImageSegmentationOutput(pred_masks=torch.zeros(1, 1, 1, 4, 4))
    with pytest.raises(ValueError, match="Sam1, Sam2 or Sam3"):
        postprocess(outputs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ([("metric", "dice")], ValueError, "dictionary"),
        ({"safe_screening": "yes"}, TypeError, "safe_screening"),
        ({"solver": "nope"}, ValueError, "solver"),
    ],
)
def test_bad_rankseg_kwargs(kwargs, error, match):
    with pytest.raises(error, match=match):
        postprocess({"logits": torch.zeros(1, 2, 3, 3)}, rankseg_kwargs=kwargs)


def test_import_rankseg_imports_neither_torch_nor_the_adapters():
    code = (
        "import sys, rankseg, rankseg.integration; "
        "print(sorted(m for m in ('torch', 'transformers', 'rankseg.integration.sam', "
        "'rankseg.integration.transformers') if m in sys.modules)); "
        "rankseg.integration.sam; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]
