"""RankSEG after the Segment Anything models of Hugging Face Transformers.

Each SAM generation lays its masks out differently, so each has its adapter; the
``restore_*`` methods give the mask probabilities as the processor computes the masks
it thresholds, the ``postprocess*`` methods decide them with :class:`rankseg.RankSEG`
(``output_mode='multilabel'``: every mask is its own binary decision)::

    from rankseg.integration.sam import Sam1

    inputs = processor(images=image, input_points=points, return_tensors="pt")
    outputs = model(**inputs)
    masks = Sam1(rankseg_kwargs={"metric": "dice"}).postprocess(
        outputs,
        original_sizes=inputs["original_sizes"],
        reshaped_input_sizes=inputs["reshaped_input_sizes"],
    )   # where processor.post_process_masks(outputs.pred_masks, ...) stands

* :class:`Sam1` (SAM, SAM-HQ): ``pred_masks`` (low resolution logits) resized to the
  padded input size (1024 x 1024 unless ``pad_size`` says otherwise), the padding
  cropped to each image's reshaped input size, resized to its original size, sigmoid;
* :class:`Sam2`: ``pred_masks`` resized to the original size; with
  ``apply_non_overlapping_constraints`` every pixel is kept only by the object (first
  dimension) with the largest logit there, the others' logits capped at -10; sigmoid;
* :class:`Sam3`: instances (``pred_logits`` scores, times the sigmoid of
  ``presence_logits`` when given, above ``threshold``; ``pred_boxes`` scaled to the
  target size; ``pred_masks`` sigmoid, resized) and the semantic map
  (``semantic_seg``, sigmoid, resized).

With ``rankseg_kwargs={"metric": "acc"}`` the masks are the processor's (``p > 0.5``,
i.e. logit > 0: ``post_process_masks``, SAM3's ``post_process_instance_segmentation``
and ``post_process_semantic_segmentation``); tests/test_integration_sam.py checks it.
Names and signatures are those of the torch ``rankseg`` package (0.0.8).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rankseg.integration.sam needs PyTorch; install it with pip install torch"
    ) from exc

from rankseg.integration import predict_tensor, rankseg_model
from rankseg.integration._tensors import SAM_OUTPUTS, check_tensor, class_names, field, working

__all__ = ["Sam1", "Sam2", "Sam3"]

_SAM1_OUTPUTS = frozenset({"SamImageSegmentationOutput", "SamHQImageSegmentationOutput"})
_SAM2_OUTPUTS = frozenset({"Sam2ImageSegmentationOutput"})
_SAM3_OUTPUTS = frozenset({"Sam3ImageSegmentationOutput", "Sam3LiteTextImageSegmentationOutput"})
#: SAM's processor pads every image to this size (its ``pad_size``)
_SAM1_PAD = (1024, 1024)
#: the logit SAM2's non-overlap constraint gives an object where another one wins
_SUPPRESSED_LOGIT = -10.0


def _check_family(outputs: Any, accepted: frozenset[str], adapter: str) -> None:
    """Refuse another SAM generation's output class (a dict or unknown class passes)."""
    found = class_names(outputs) & SAM_OUTPUTS
    if found and not found & accepted:
        raise ValueError(
            f"{adapter} cannot decide a {sorted(found)[0]}; use the adapter of that SAM "
            "generation (Sam1: SAM/SAM-HQ, Sam2: SAM2, Sam3: SAM3)"
        )


def _size(size: Any, name: str) -> tuple[int, int]:
    """One ``(height, width)``: a pair, a tensor of 2 integers, ``{'height', 'width'}``.

    A processor's ``pad_size`` (a ``SizeDict`` with ``height`` and ``width``) is one too.
    """
    if not isinstance(size, (Mapping, Sequence, torch.Tensor)) and hasattr(size, "height"):
        size = {"height": size.height, "width": getattr(size, "width", None)}  # a SizeDict
    if isinstance(size, Mapping):
        if "height" not in size or "width" not in size:
            raise ValueError(
                f"{name}: a size mapping needs 'height' and 'width'; got {dict(size)!r}"
            )
        size = (size["height"], size["width"])
    if isinstance(size, torch.Tensor):
        if size.ndim != 1 or size.numel() != 2:
            raise ValueError(
                f"{name}: a size tensor must hold 2 values; got shape {tuple(size.shape)}"
            )
        if size.dtype == torch.bool or size.is_floating_point():
            raise TypeError(f"{name}: a size tensor must have an integer dtype; got {size.dtype}")
        size = size.tolist()
    if not isinstance(size, Sequence) or isinstance(size, (str, bytes)) or len(size) != 2:
        raise ValueError(f"{name} must be one (height, width) pair or one per image; got {size!r}")
    if any(isinstance(n, bool) or not isinstance(n, Integral) for n in size):
        raise TypeError(f"{name}: height and width must be integers; got {size!r}")
    if any(n <= 0 for n in size):
        raise ValueError(f"{name}: height and width must be positive; got {tuple(size)!r}")
    return int(size[0]), int(size[1])


def _sizes(sizes: Any, batch: int, name: str) -> list[tuple[int, int]]:
    """One ``(height, width)`` per image: a single pair, a list of them, a tensor ``(B, 2)``."""
    if sizes is None:
        raise ValueError(f"{name} is required: one (height, width) pair per image")
    if isinstance(sizes, torch.Tensor):
        if sizes.ndim == 1 and sizes.numel() == 2:
            sizes = [sizes]
        elif sizes.ndim == 2 and sizes.shape[1] == 2:
            if sizes.dtype == torch.bool or sizes.is_floating_point():
                raise TypeError(
                    f"{name}: a size tensor must have an integer dtype; got {sizes.dtype}"
                )
            sizes = list(sizes.unbind(0))
        else:
            raise ValueError(
                f"{name} must be one (height, width) pair or one per image; got a tensor of "
                f"shape {tuple(sizes.shape)}"
            )
    elif isinstance(sizes, Mapping):
        sizes = [sizes]
    elif isinstance(sizes, Sequence) and not isinstance(sizes, (str, bytes)):
        flat = len(sizes) > 0 and not any(
            isinstance(n, (Mapping, Sequence, torch.Tensor)) for n in sizes
        )
        sizes = [sizes] if flat else list(sizes)
    else:
        raise ValueError(
            f"{name} must be one (height, width) pair or one per image; got {type(sizes).__name__}"
        )
    if len(sizes) != batch:
        raise ValueError(f"{name} must hold one size per image: {batch} image(s), got {len(sizes)}")
    return [_size(size, name) for size in sizes]


def _resize(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=False)


def _prompt_masks(outputs: Any, adapter: str) -> torch.Tensor:
    """``outputs.pred_masks`` of SAM1/SAM2: ``(B, N, H, W)`` or ``(B, P, N, H, W)`` logits."""
    pred_masks = field(outputs, "pred_masks")
    if pred_masks is None:
        raise ValueError(f"{adapter} needs outputs.pred_masks (the mask logits); it is missing")
    pred_masks = check_tensor(pred_masks, "pred_masks", (4, 5), "(B, N, H, W) or (B, P, N, H, W)")
    if 0 in pred_masks.shape[1:]:
        raise ValueError(f"outputs.pred_masks has an empty dimension: {tuple(pred_masks.shape)}")
    return pred_masks


def _mask_model(rankseg_kwargs: Any) -> Any:
    """Build the RankSEG of the SAM adapters: each mask a binary decision (multilabel)."""
    mode = "multilabel"
    if isinstance(rankseg_kwargs, dict):  # anything else: _rankseg_model says what is wrong
        mode = rankseg_kwargs.get("output_mode", mode)
    if not isinstance(mode, str):
        raise TypeError(f"the SAM adapters need output_mode='multilabel'; got {mode!r}")
    if mode.strip().lower() != "multilabel":
        raise ValueError(
            "the SAM adapters need output_mode='multilabel': prompt, instance and semantic "
            f"masks are independent binary masks, not classes of one label map; got {mode!r}"
        )
    return rankseg_model(rankseg_kwargs, default_output_mode="multilabel")


def _decide_masks(rankseg: Any, probs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Bool masks of the shape of each ``(P, N, H, W)`` (or ``(N, H, W)``) probability tensor."""
    out = []
    for p in probs:
        out.append(
            predict_tensor(rankseg, p)
            if p.ndim == 4
            else predict_tensor(rankseg, p.unsqueeze(0))[0]
        )
    return out


class Sam1:
    """RankSEG for SAM and SAM-HQ prompt masks.

    Parameters
    ----------
    rankseg_kwargs : dict, optional
        Keyword arguments of :class:`rankseg.RankSEG` (``metric``, ``smooth``,
        ``solver``, ``pruning_prob``, ...); ``output_mode`` must be (and defaults to)
        ``'multilabel'``.
    pad_size : (int, int) or dict, optional
        The padded model input size, ``(height, width)`` or ``{'height': h, 'width':
        w}`` as the processor's ``pad_size``; default 1024 x 1024.

    Examples
    --------
    >>> import torch
    >>> from rankseg.integration.sam import Sam1
    >>> logits = torch.full((1, 1, 1, 4, 4), 3.0)  # (B, prompts, masks, h, w)
    >>> masks = Sam1(pad_size=(8, 8)).postprocess(
    ...     {"pred_masks": logits}, original_sizes=[(6, 3)], reshaped_input_sizes=[(8, 4)])
    >>> masks[0].shape, masks[0].dtype, bool(masks[0].all())
    (torch.Size([1, 1, 6, 3]), torch.bool, True)
    """

    def __init__(self, *, rankseg_kwargs: dict[str, Any] | None = None, pad_size: Any = None):
        self.rankseg_kwargs = rankseg_kwargs
        self.pad_size = pad_size

    def restore_mask_probs(
        self, outputs: Any, *, original_sizes: Any, reshaped_input_sizes: Any
    ) -> list[torch.Tensor]:
        """Mask probabilities of each image at its original size.

        Parameters
        ----------
        outputs : SamImageSegmentationOutput, SamHQImageSegmentationOutput or Mapping
            With ``pred_masks`` (mask logits ``(B, P, N, h, w)`` or ``(B, N, h, w)``).
        original_sizes : sequence or torch.Tensor
            Each image's ``(height, width)`` before the processor resized it (the
            processor's ``original_sizes``).
        reshaped_input_sizes : sequence or torch.Tensor
            Each image's ``(height, width)`` after resizing, before padding (the
            processor's ``reshaped_input_sizes``).

        Returns
        -------
        list of torch.Tensor
            Per image, ``(P, N, H, W)`` probabilities (``(1, N, H, W)`` for 4-D
            ``pred_masks``); differentiable.
        """
        _check_family(outputs, _SAM1_OUTPUTS, "Sam1")
        pred_masks = _prompt_masks(outputs, "Sam1")
        batch = pred_masks.shape[0]
        original = _sizes(original_sizes, batch, "original_sizes")
        reshaped = _sizes(reshaped_input_sizes, batch, "reshaped_input_sizes")
        pad = _size(_SAM1_PAD if self.pad_size is None else self.pad_size, "pad_size")
        for h, w in reshaped:
            if h > pad[0] or w > pad[1]:
                raise ValueError(
                    f"reshaped_input_sizes {(h, w)} do not fit in pad_size {pad}: the "
                    "reshaped image is a crop of the padded one"
                )
        probs = []
        for i in range(batch):
            (masks,) = working(pred_masks[i])
            if masks.ndim == 3:
                masks = masks.unsqueeze(0)
            masks = _resize(masks, pad)[..., : reshaped[i][0], : reshaped[i][1]]
            probs.append(_resize(masks, original[i]).sigmoid())
        return probs

    def postprocess(
        self, outputs: Any, *, original_sizes: Any, reshaped_input_sizes: Any
    ) -> list[torch.Tensor]:
        """RankSEG masks of each image at its original size (no gradients recorded).

        Parameters are those of :meth:`restore_mask_probs`.

        Returns
        -------
        list of torch.Tensor
            Per image, bool masks of the shape of :meth:`restore_mask_probs`' tensors,
            on the outputs' device.
        """
        with torch.no_grad():
            probs = self.restore_mask_probs(
                outputs, original_sizes=original_sizes, reshaped_input_sizes=reshaped_input_sizes
            )
            return _decide_masks(_mask_model(self.rankseg_kwargs), probs)


class Sam2:
    """RankSEG for SAM2 prompt masks.

    Parameters
    ----------
    rankseg_kwargs : dict, optional
        Keyword arguments of :class:`rankseg.RankSEG`; ``output_mode`` must be (and
        defaults to) ``'multilabel'``.
    apply_non_overlapping_constraints : bool
        Keep each pixel for the object (first dimension of an image's masks) with the
        largest logit there, the others' logits capped at -10 before the sigmoid (as the
        processor's ``apply_non_overlapping_constraints``).  Default False.

    Examples
    --------
    >>> import torch
    >>> from rankseg.integration.sam import Sam2
    >>> logits = torch.tensor([[[[[4.0, -4.0]]], [[[2.0, 3.0]]]]])  # (B=1, objects=2, 1, 1, 2)
    >>> Sam2(apply_non_overlapping_constraints=True).postprocess(
    ...     {"pred_masks": logits}, original_sizes=[(1, 2)])[0][:, 0]
    tensor([[[ True, False]],
    <BLANKLINE>
            [[False,  True]]])
    """

    def __init__(
        self,
        *,
        rankseg_kwargs: dict[str, Any] | None = None,
        apply_non_overlapping_constraints: bool = False,
    ):
        if not isinstance(apply_non_overlapping_constraints, bool):
            raise TypeError(
                "apply_non_overlapping_constraints must be a bool; got "
                f"{apply_non_overlapping_constraints!r}"
            )
        self.rankseg_kwargs = rankseg_kwargs
        self.apply_non_overlapping_constraints = apply_non_overlapping_constraints

    def restore_mask_probs(self, outputs: Any, *, original_sizes: Any) -> list[torch.Tensor]:
        """Mask probabilities of each image at its original size.

        Parameters
        ----------
        outputs : Sam2ImageSegmentationOutput or Mapping
            With ``pred_masks`` (mask logits ``(B, P, N, h, w)`` or ``(B, N, h, w)``).
        original_sizes : sequence or torch.Tensor
            Each image's ``(height, width)`` (the processor's ``original_sizes``).

        Returns
        -------
        list of torch.Tensor
            Per image, ``(P, N, H, W)`` probabilities (``(1, N, H, W)`` for 4-D
            ``pred_masks``); differentiable.
        """
        _check_family(outputs, _SAM2_OUTPUTS, "Sam2")
        pred_masks = _prompt_masks(outputs, "Sam2")
        original = _sizes(original_sizes, pred_masks.shape[0], "original_sizes")
        probs = []
        for i, size in enumerate(original):
            (masks,) = working(pred_masks[i])
            if masks.ndim == 3:
                masks = masks.unsqueeze(0)
            masks = _resize(masks, size)
            if self.apply_non_overlapping_constraints and masks.shape[0] > 1:
                winner = masks.argmax(dim=0, keepdim=True)
                objects = torch.arange(masks.shape[0], device=masks.device).view(-1, 1, 1, 1)
                masks = torch.where(winner == objects, masks, masks.clamp(max=_SUPPRESSED_LOGIT))
            probs.append(masks.sigmoid())
        return probs

    def postprocess(self, outputs: Any, *, original_sizes: Any) -> list[torch.Tensor]:
        """RankSEG masks of each image at its original size (no gradients recorded).

        Parameters are those of :meth:`restore_mask_probs`.

        Returns
        -------
        list of torch.Tensor
            Per image, bool masks of the shape of :meth:`restore_mask_probs`' tensors,
            on the outputs' device.
        """
        with torch.no_grad():
            probs = self.restore_mask_probs(outputs, original_sizes=original_sizes)
            return _decide_masks(_mask_model(self.rankseg_kwargs), probs)


class Sam3:
    """RankSEG for SAM3 instance masks and semantic maps.

    Parameters
    ----------
    rankseg_kwargs : dict, optional
        Keyword arguments of :class:`rankseg.RankSEG`; ``output_mode`` must be (and
        defaults to) ``'multilabel'``.
    threshold : float
        Instances whose score is not above it are dropped (as the processor's
        ``threshold``); in [0, 1], default 0.3.

    Examples
    --------
    >>> import torch
    >>> from rankseg.integration.sam import Sam3
    >>> semantic = torch.tensor([[[[3.0, -3.0], [-3.0, 3.0]]]])  # (B=1, 1, 2, 2)
    >>> Sam3().postprocess_semantic({"semantic_seg": semantic}, target_sizes=[(2, 2)])
    [tensor([[ True, False],
            [False,  True]])]
    """

    def __init__(self, *, rankseg_kwargs: dict[str, Any] | None = None, threshold: float = 0.3):
        if isinstance(threshold, bool) or not isinstance(threshold, Real):
            raise TypeError(f"threshold must be a real number in [0, 1]; got {threshold!r}")
        threshold = float(threshold)
        if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]; got {threshold!r}")
        self.rankseg_kwargs: dict[str, Any] | None = rankseg_kwargs
        self.threshold: float = threshold

    def restore_instance_mask_probs(
        self, outputs: Any, *, target_sizes: Any = None, original_sizes: Any = None
    ) -> list[dict[str, torch.Tensor]]:
        """Scores, boxes and mask probabilities of the instances above ``threshold``.

        Parameters
        ----------
        outputs : Sam3ImageSegmentationOutput or Mapping
            With ``pred_logits`` ``(B, Q)``, ``pred_boxes`` ``(B, Q, 4)`` (relative
            xyxy), ``pred_masks`` ``(B, Q, h, w)`` and optionally ``presence_logits``
            ``(B, 1)``.
        target_sizes : sequence or torch.Tensor, optional
            Each image's output ``(height, width)``; boxes are scaled and masks resized
            to it.
        original_sizes : sequence or torch.Tensor, optional
            Used when ``target_sizes`` is None.  Neither: boxes stay relative and
            masks at the model's size.

        Returns
        -------
        list of dict
            Per image ``{'scores': (K,), 'boxes': (K, 4), 'mask_probs': (K, H, W)}``.
        """
        _check_family(outputs, _SAM3_OUTPUTS, "Sam3")
        logits = check_tensor(
            field(outputs, "pred_logits"), "pred_logits", 2, "(B, Q)", spatial=False
        )
        boxes = check_tensor(
            field(outputs, "pred_boxes"), "pred_boxes", 3, "(B, Q, 4)", spatial=False
        )
        masks = check_tensor(field(outputs, "pred_masks"), "pred_masks", 4, "(B, Q, H, W)")
        presence = field(outputs, "presence_logits")
        if boxes.shape[-1] != 4:
            raise ValueError(
                f"outputs.pred_boxes must have shape (B, Q, 4); got {tuple(boxes.shape)}"
            )
        if not logits.shape == boxes.shape[:2] == masks.shape[:2]:
            raise ValueError(
                "outputs.pred_logits, pred_boxes and pred_masks must have the same batch and "
                f"query dimensions; got {tuple(logits.shape)}, {tuple(boxes.shape)}, "
                f"{tuple(masks.shape)}"
            )
        tensors = [logits, boxes, masks]
        if presence is not None:
            presence = check_tensor(presence, "presence_logits", 2, "(B, 1)", spatial=False)
            if presence.shape != (logits.shape[0], 1):
                raise ValueError(
                    f"outputs.presence_logits must have shape (B, 1) = ({logits.shape[0]}, 1); "
                    f"got {tuple(presence.shape)}"
                )
            tensors.append(presence)
        if len({t.device for t in tensors}) > 1:
            raise ValueError(
                "the SAM3 outputs (logits, boxes, masks, presence) are on different devices"
            )
        batch = logits.shape[0]
        given, name = (
            (target_sizes, "target_sizes")
            if target_sizes is not None
            else (
                original_sizes,
                "original_sizes",
            )
        )
        sizes = None if given is None else _sizes(given, batch, name)

        scores = working(logits)[0].sigmoid()
        if presence is not None:
            scores = scores * working(presence)[0].sigmoid()
        (boxes,) = working(boxes)
        if sizes is not None:
            h = torch.tensor([s[0] for s in sizes], dtype=boxes.dtype, device=boxes.device)
            w = torch.tensor([s[1] for s in sizes], dtype=boxes.dtype, device=boxes.device)
            boxes = boxes * torch.stack([w, h, w, h], dim=1).unsqueeze(1)
        mask_probs = working(masks)[0].sigmoid()
        results = []
        for i in range(batch):
            keep = scores[i] > self.threshold
            probs = mask_probs[i][keep]
            if sizes is not None and len(probs) > 0:
                probs = _resize(probs.unsqueeze(0), sizes[i])[0]
            results.append(
                {"scores": scores[i][keep], "boxes": boxes[i][keep], "mask_probs": probs}
            )
        return results

    def restore_semantic_mask_probs(
        self, outputs: Any, *, target_sizes: Any = None, original_sizes: Any = None
    ) -> list[torch.Tensor]:
        """Semantic map probabilities of each image.

        Parameters
        ----------
        outputs : Sam3ImageSegmentationOutput or Mapping
            With ``semantic_seg`` (logits ``(B, 1, h, w)``).
        target_sizes : sequence or torch.Tensor, optional
            Each image's output ``(height, width)``.
        original_sizes : sequence or torch.Tensor, optional
            Used when ``target_sizes`` is None; neither keeps the model's size.

        Returns
        -------
        list of torch.Tensor
            Per image, ``(1, H, W)`` probabilities (the sigmoid, then resized, as the
            processor); differentiable.
        """
        _check_family(outputs, _SAM3_OUTPUTS, "Sam3")
        semantic = field(outputs, "semantic_seg")
        if semantic is None:
            raise ValueError("Sam3 semantic maps need outputs.semantic_seg; it is missing")
        semantic = check_tensor(semantic, "semantic_seg", 4, "(B, 1, H, W)")
        if semantic.shape[1] != 1:
            raise ValueError(
                f"outputs.semantic_seg must have shape (B, 1, H, W); got {tuple(semantic.shape)}"
            )
        probs = working(semantic)[0].sigmoid()
        given, name = (
            (target_sizes, "target_sizes")
            if target_sizes is not None
            else (
                original_sizes,
                "original_sizes",
            )
        )
        if given is None:
            return list(probs.unbind(0))
        sizes = _sizes(given, probs.shape[0], name)
        return [_resize(probs[i : i + 1], size)[0] for i, size in enumerate(sizes)]

    def postprocess_instance(
        self, outputs: Any, *, target_sizes: Any = None, original_sizes: Any = None
    ) -> list[dict[str, torch.Tensor]]:
        """RankSEG masks of the instances above ``threshold`` (no gradients recorded).

        Parameters are those of :meth:`restore_instance_mask_probs`.

        Returns
        -------
        list of dict
            Per image ``{'scores': (K,), 'boxes': (K, 4), 'masks': (K, H, W) bool}``;
            each instance's mask is decided on its own.
        """
        with torch.no_grad():
            restored = self.restore_instance_mask_probs(
                outputs, target_sizes=target_sizes, original_sizes=original_sizes
            )
            rankseg = _mask_model(self.rankseg_kwargs)
            results = []
            for r in restored:
                probs = r["mask_probs"]
                if len(probs) == 0:
                    masks = probs.to(torch.bool)
                else:
                    masks = predict_tensor(rankseg, probs.unsqueeze(1))[:, 0]
                results.append({"scores": r["scores"], "boxes": r["boxes"], "masks": masks})
            return results

    def postprocess_semantic(
        self, outputs: Any, *, target_sizes: Any = None, original_sizes: Any = None
    ) -> list[torch.Tensor]:
        """RankSEG semantic mask of each image (no gradients recorded).

        Parameters are those of :meth:`restore_semantic_mask_probs`.

        Returns
        -------
        list of torch.Tensor
            Per image, a bool mask ``(H, W)``.
        """
        with torch.no_grad():
            probs = self.restore_semantic_mask_probs(
                outputs, target_sizes=target_sizes, original_sizes=original_sizes
            )
            rankseg = _mask_model(self.rankseg_kwargs)
            return [predict_tensor(rankseg, p.unsqueeze(0))[0, 0] for p in probs]
