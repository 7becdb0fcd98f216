"""RankSEG after Hugging Face Transformers segmentation models.

Where ``processor.post_process_semantic_segmentation(outputs, target_sizes=...)``
takes the argmax, :func:`postprocess` takes the RankSEG decision::

    from rankseg.integration.transformers import postprocess

    outputs = model(**processor(images=image, return_tensors="pt"))
    labels = postprocess(outputs, target_sizes=[image.size[::-1]],
                         rankseg_kwargs={"metric": "dice"})[0]   # (H, W) int64

:func:`restore_semantic_probs` gives the per-class probabilities the decision is made
on, one ``(C, H, W)`` tensor per image, computed as the processors compute the scores
they take the argmax of:

* semantic heads (``outputs.logits`` of shape ``(B, C, h, w)``: SegFormer, UPerNet,
  DPT, BEiT, ...): logits resized bilinearly to the target size, then softmax over the
  classes (a sigmoid when there is one class);
* query-based heads (MaskFormer, Mask2Former: ``class_queries_logits`` ``(B, Q, C+1)``
  and ``masks_queries_logits`` ``(B, Q, h, w)``; the DETR family: ``logits`` and
  ``pred_masks``): the softmax of each query's class logits without its last (null)
  class, times the sigmoid of its mask, summed over the queries; for Mask2Former the
  masks are first resized to 384 x 384 as its processor does; then resized to the
  target size and divided by their sum over the classes so that they are
  probabilities (one class: clipped to [0, 1]).

The argmax of these probabilities is the processor's segmentation, so
``rankseg_kwargs={"metric": "acc"}`` reproduces ``post_process_semantic_segmentation``
(tests/test_integration_transformers.py checks it on tiny random models).  SAM-family
outputs are refused here: use :mod:`rankseg.integration.sam`.  EoMT outputs (patch
offsets) are not supported.

Names and signatures are those of the torch ``rankseg`` package (0.0.8); torch is
imported by this module (``pip install torch transformers``), never by ``import
rankseg``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rankseg.integration.transformers needs PyTorch; install it with pip install torch"
    ) from exc

from rankseg.integration import predict_tensor, rankseg_model
from rankseg.integration._tensors import SAM_OUTPUTS, check_tensor, class_names, field, working

__all__ = ["postprocess", "restore_semantic_probs"]

#: Mask2Former's processor resizes the mask logits to this size before combining them
_MASK2FORMER_SIZE = (384, 384)
_SIZES_EXPECTED = (
    "target_sizes must be None, one (height, width) pair of positive integers per image, "
    "or an integer tensor of shape (B, 2)"
)


def _is_model(model: Any, config_class: str, model_type: str) -> bool:
    """Whether ``model.config`` is ``config_class`` (or says ``model_type``)."""
    config = getattr(model, "config", None)
    if config is None:
        return False
    if config_class in class_names(config):
        return True
    if isinstance(config, Mapping):
        return config.get("model_type") == model_type
    return getattr(config, "model_type", None) == model_type


def _target_sizes(target_sizes: Any, batch: int) -> list[tuple[int, int]] | None:
    """One ``(height, width)`` per image, or None (keep the model's size)."""
    if target_sizes is None:
        return None
    if isinstance(target_sizes, torch.Tensor):
        if target_sizes.ndim != 2 or target_sizes.shape[1] != 2:
            raise ValueError(
                f"{_SIZES_EXPECTED}; got a tensor of shape {tuple(target_sizes.shape)}"
            )
        if target_sizes.dtype == torch.bool or target_sizes.is_floating_point():
            raise TypeError(
                f"target_sizes tensor must have an integer dtype; got {target_sizes.dtype}"
            )
        target_sizes = target_sizes.tolist()
    if not isinstance(target_sizes, Sequence) or isinstance(target_sizes, (str, bytes)):
        raise ValueError(f"{_SIZES_EXPECTED}; got {type(target_sizes).__name__}")
    if len(target_sizes) != batch:
        raise ValueError(
            f"target_sizes must hold one (height, width) pair per image: {batch} image(s), "
            f"got {len(target_sizes)} pair(s)"
        )
    sizes = []
    for size in target_sizes:
        if isinstance(size, torch.Tensor):
            size = size.tolist() if size.ndim == 1 else size
        if not isinstance(size, Sequence) or isinstance(size, (str, bytes)) or len(size) != 2:
            raise ValueError(f"{_SIZES_EXPECTED}; got the entry {size!r}")
        if any(isinstance(n, bool) or not isinstance(n, Integral) for n in size):
            raise TypeError(f"each target size must be two integers (height, width); got {size!r}")
        if any(n <= 0 for n in size):
            raise ValueError(f"each target size must be positive; got {tuple(size)!r}")
        sizes.append((int(size[0]), int(size[1])))
    return sizes


def _resized(scores: torch.Tensor, sizes: list[tuple[int, int]] | None) -> list[torch.Tensor]:
    """Per image, ``(C, h, w)`` resized bilinearly to its target size (as the processors)."""
    if sizes is None:
        return list(scores.unbind(0))
    out = []
    for i, size in enumerate(sizes):
        image = scores[i : i + 1]
        if tuple(image.shape[-2:]) != size:
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        out.append(image[0])
    return out


def _query_probs(
    outputs: Any, class_name: str, mask_name: str, target_sizes: Any, mask_size: Any
) -> list[torch.Tensor]:
    class_logits = check_tensor(
        field(outputs, class_name), class_name, 3, "(B, Q, C + 1)", spatial=False
    )
    mask_logits = check_tensor(field(outputs, mask_name), mask_name, 4, "(B, Q, H, W)")
    if class_logits.shape[-1] < 2:
        raise ValueError(
            f"outputs.{class_name} must hold at least one class and the null class in its "
            f"last dimension; got {tuple(class_logits.shape)}"
        )
    if class_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(
            f"outputs.{class_name} {tuple(class_logits.shape)} and outputs.{mask_name} "
            f"{tuple(mask_logits.shape)} must have the same batch and query dimensions"
        )
    if class_logits.device != mask_logits.device:
        raise ValueError(f"outputs.{class_name} and outputs.{mask_name} are on different devices")
    sizes = _target_sizes(target_sizes, class_logits.shape[0])
    class_logits, mask_logits = working(class_logits, mask_logits)
    if mask_size is not None and tuple(mask_logits.shape[-2:]) != mask_size:
        mask_logits = F.interpolate(
            mask_logits, size=mask_size, mode="bilinear", align_corners=False
        )
    class_probs = class_logits.softmax(dim=-1)[..., :-1]  # the null class dropped
    scores = torch.einsum("bqc,bqhw->bchw", class_probs, mask_logits.sigmoid())
    probs = []
    for score in _resized(scores, sizes):
        if score.shape[0] == 1:
            # a sum over queries may pass 1 where masks overlap; dividing one class by
            # itself would make every pixel with any score certain
            probs.append(score.clamp(0.0, 1.0))
        else:
            total = score.sum(dim=0, keepdim=True)
            # every positive total is divided, however small (a fixed epsilon would keep
            # tiny float64 scores unnormalized); an all-zero pixel stays zero
            probs.append(score / torch.where(total > 0, total, torch.ones_like(total)))
    return probs


def restore_semantic_probs(
    outputs: Any, *, model: Any = None, target_sizes: Any = None
) -> list[torch.Tensor]:
    """Per-class probabilities of each image from a Transformers segmentation output.

    Parameters
    ----------
    outputs : ModelOutput or Mapping
        The model's structured output with ``logits`` (semantic heads),
        ``class_queries_logits`` and ``masks_queries_logits`` (MaskFormer,
        Mask2Former) or ``logits`` and ``pred_masks`` (DETR family).
    model : PreTrainedModel, optional
        The model; its config tells a Mask2Former output (whose masks are resized to
        384 x 384 first) when the output's class does not.
    target_sizes : sequence of (int, int) or torch.Tensor, optional
        One ``(height, width)`` per image (or an integer tensor ``(B, 2)``); None keeps
        the model's output size.

    Returns
    -------
    list of torch.Tensor
        One ``(C, H, W)`` probability tensor per image (float32, float64 for float64
        outputs), on the outputs' device; differentiable.

    Raises
    ------
    ValueError
        For SAM-family or EoMT outputs, tuples, outputs without the fields above, bad
        shapes, non-finite values or bad ``target_sizes``.
    TypeError
        If a field is not a floating torch tensor or a size is not an integer.

    Examples
    --------
    >>> import torch
    >>> from rankseg.integration.transformers import restore_semantic_probs
    >>> probs = restore_semantic_probs({"logits": torch.zeros(1, 3, 4, 4)},
    ...                                target_sizes=[(8, 8)])
    >>> probs[0].shape, float(probs[0][0, 0, 0])
    (torch.Size([3, 8, 8]), 0.3333333432674408)
    """
    names = class_names(outputs)
    pred_masks = field(outputs, "pred_masks")
    if (
        names & SAM_OUTPUTS
        or field(outputs, "semantic_seg") is not None
        or (pred_masks is not None and field(outputs, "iou_scores") is not None)
        or (pred_masks is not None and field(outputs, "pred_boxes") is not None)
    ):
        raise ValueError(
            "SAM-family outputs are decided by the adapters of rankseg.integration.sam "
            "(Sam1, Sam2 or Sam3), not by rankseg.integration.transformers"
        )
    if field(outputs, "class_queries_logits") is not None:
        has_offsets = hasattr(outputs, "patch_offsets") or (
            isinstance(outputs, Mapping) and "patch_offsets" in outputs
        )
        if (
            has_offsets
            or "EomtForUniversalSegmentationOutput" in names
            or _is_model(model, "EomtConfig", "eomt")
        ):
            raise ValueError(
                "EoMT outputs need its processor's resizing, unpadding and patch merging; "
                "they are not supported: use the processor's post-processing"
            )
        mask2former = "Mask2FormerForUniversalSegmentationOutput" in names or _is_model(
            model, "Mask2FormerConfig", "mask2former"
        )
        return _query_probs(
            outputs,
            "class_queries_logits",
            "masks_queries_logits",
            target_sizes,
            _MASK2FORMER_SIZE if mask2former else None,
        )
    logits = field(outputs, "logits")
    if logits is not None and pred_masks is not None:
        # DETR, Conditional DETR, ...: class logits (B, Q, C + 1) with a null class
        return _query_probs(outputs, "logits", "pred_masks", target_sizes, None)
    if logits is not None:
        logits = check_tensor(logits, "logits", 4, "(B, C, H, W)")
        if logits.shape[1] == 0:
            raise ValueError("outputs.logits has no class channel: shape (B, 0, H, W)")
        sizes = _target_sizes(target_sizes, logits.shape[0])
        (logits,) = working(logits)
        return [
            x.sigmoid() if x.shape[0] == 1 else x.softmax(dim=0) for x in _resized(logits, sizes)
        ]
    if pred_masks is not None:
        raise ValueError(
            "outputs with pred_masks alone need the model's own semantic reconstruction; "
            "expected logits with pred_masks (DETR family)"
        )
    raise ValueError(
        "unsupported outputs: expected 'logits' (semantic heads), 'class_queries_logits' "
        "and 'masks_queries_logits' (MaskFormer/Mask2Former), or 'logits' and "
        "'pred_masks' (DETR family)"
    )


def postprocess(
    outputs: Any,
    *,
    model: Any = None,
    target_sizes: Any = None,
    rankseg_kwargs: dict[str, Any] | None = None,
) -> list[torch.Tensor]:
    """RankSEG labels (or masks) of each image from a Transformers segmentation output.

    The RankSEG counterpart of the image processor's
    ``post_process_semantic_segmentation``: the probabilities of
    :func:`restore_semantic_probs`, decided image by image by :class:`rankseg.RankSEG`.
    Gradients are not recorded.

    Parameters
    ----------
    outputs : ModelOutput or Mapping
        As for :func:`restore_semantic_probs`.
    model : PreTrainedModel, optional
        As for :func:`restore_semantic_probs`.
    target_sizes : sequence of (int, int) or torch.Tensor, optional
        As for :func:`restore_semantic_probs`.
    rankseg_kwargs : dict, optional
        Keyword arguments of :class:`rankseg.RankSEG` (``metric``, ``smooth``,
        ``solver``, ``pruning_prob``, ...; names in any case, ``safe_screening``
        accepted and without effect).  ``output_mode`` defaults to ``'multiclass'``,
        ``'multilabel'`` for a one-class model.

    Returns
    -------
    list of torch.Tensor
        One per image, on the outputs' device: an int64 label map ``(H, W)``
        (multiclass) or bool masks ``(C, H, W)`` (multilabel).

    Examples
    --------
    >>> import torch
    >>> from rankseg.integration.transformers import postprocess
    >>> logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 2.0]]]])  # (B=1, C=2, 1, 2)
    >>> postprocess({"logits": logits}, rankseg_kwargs={"metric": "dice"})
    [tensor([[0, 1]])]
    """
    with torch.no_grad():
        probs = restore_semantic_probs(outputs, model=model, target_sizes=target_sizes)
        if not probs:
            return []
        mode = "multilabel" if probs[0].shape[0] == 1 else "multiclass"
        rankseg = rankseg_model(rankseg_kwargs, default_output_mode=mode)
        return [predict_tensor(rankseg, p.unsqueeze(0))[0] for p in probs]
