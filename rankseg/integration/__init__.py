"""Model adapters with the names and signatures of the torch RankSEG package's.

Two modules, imported on demand (``import rankseg`` imports neither, nor torch):

* :mod:`rankseg.integration.transformers`: ``restore_semantic_probs`` and
  ``postprocess`` for Hugging Face Transformers semantic heads (SegFormer, UPerNet,
  DPT, BEiT) and query-based heads (MaskFormer, Mask2Former, DETR family);
* :mod:`rankseg.integration.sam`: ``Sam1``, ``Sam2`` and ``Sam3`` for the SAM family.

Code written for ``rankseg`` 0.0.8 (``from rankseg.integration import sam,
transformers``) runs unchanged; the decision is made by :class:`rankseg.RankSEG`.
``rankseg_kwargs`` take the torch package's keywords: solver and metric names in any
case (``'RMA'``, ``'BA+TRNA'``, ``'Accuracy'``) and ``safe_screening``, which is
accepted and checked but changes nothing here: our RMA solver screens exactly, so the
masks are those of the full sort either way.  See docs/integration.rst.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sam", "transformers"]

_SUBMODULES = ("sam", "transformers")


def __getattr__(name: str) -> Any:
    # ``rankseg.integration.sam`` after ``import rankseg.integration``, as in the torch
    # package, without importing torch before a submodule is asked for
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rankseg_model(rankseg_kwargs: Any, *, default_output_mode: str) -> Any:
    """Build a :class:`rankseg.RankSEG` from the torch package's ``rankseg_kwargs``.

    ``None`` means no keywords; ``output_mode`` defaults to ``default_output_mode``.
    The torch package's spellings (names in any case, ``'accuracy'``,
    ``safe_screening``) are :class:`rankseg.RankSEG`'s own: decided there, once.
    """
    from rankseg._api import RankSEG

    if rankseg_kwargs is None:
        rankseg_kwargs = {}
    elif not isinstance(rankseg_kwargs, dict):
        raise ValueError(
            "rankseg_kwargs must be a dictionary of rankseg.RankSEG keyword arguments "
            f"or None; got {type(rankseg_kwargs).__name__}"
        )
    kwargs = dict(rankseg_kwargs)  # the caller's dict is never modified
    kwargs.setdefault("output_mode", default_output_mode)
    return RankSEG(**kwargs)


def predict_tensor(model: Any, probs: Any) -> Any:
    """``model.predict`` on a torch tensor, the result a tensor on the input's device.

    The one place where the adapters cross between torch and NumPy: the probabilities
    go to the host as float32 (bfloat16 and float16 included; float64 stays float64),
    the labels (int64) or masks (bool) come back to ``probs.device``.
    """
    import torch

    with torch.no_grad():
        host = probs.detach()
        if host.dtype != torch.float64:
            host = host.float()
        result = model.predict(host.cpu().numpy())
    return torch.from_numpy(result).to(probs.device)
