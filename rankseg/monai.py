"""MONAI transforms: RankSEG where ``AsDiscrete(argmax=True)`` / ``AsDiscreted`` stand.

::

    from monai.transforms import Compose, SaveImaged
    from rankseg.monai import RankSEGd

    post = Compose([
        Activationsd(keys="pred", softmax=True),
        RankSEGd(keys="pred", metric="dice"),          # was AsDiscreted(keys="pred", argmax=True)
        SaveImaged(keys="pred", output_dir="out"),
    ])

The transforms are a thin layer over :class:`rankseg.RankSEG`: a channel-first item
``(C, *spatial)`` (or a batch ``(B, C, *spatial)`` with ``batch=True``) is moved to
the host as a NumPy view (no copy for a CPU tensor), decided, and returned like
``AsDiscrete`` returns: a tensor on the input's device, a ``MetaTensor`` with the
input's affine, meta dict and ``applied_operations`` when the input is one (so
``Invertd`` and ``SaveImage`` work after it), dtype float32 unless ``dtype`` says
otherwise.  The output is

* ``output_mode='multiclass'`` (default): a label map ``(1, *spatial)`` like
  ``AsDiscrete(argmax=True)``; with ``to_onehot=C`` its one-hot ``(C, *spatial)``
  like ``AsDiscrete(argmax=True, to_onehot=C)`` (a ``void_index`` pixel is all 0);
* ``output_mode='multilabel'``: one mask per class ``(C, *spatial)``, the RankSEG
  counterpart of ``AsDiscrete(threshold=0.5)`` after a sigmoid.

A CUDA tensor is decided on its GPU by the CUDA backend (read in place; the result
is a tensor on the same device) when that backend works (numba-cuda, a driver, a
GPU); otherwise, and for the ``presence`` rules, it is copied to the host, decided by
the CPU backend and the result copied back to its device.  The decision is the same
either way.  Tensors on other devices (MPS, ...) take the host path.

MONAI and PyTorch are not dependencies of rankseg: ``pip install 'rankseg-numba[monai]'``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

try:
    import torch
    from monai.config import KeysCollection
    from monai.data.meta_obj import get_track_meta
    from monai.transforms import MapTransform, Transform
    from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rankseg.monai needs MONAI and PyTorch; "
        "install them with pip install 'rankseg-numba[monai]'"
    ) from exc

from rankseg._api import RankSEG as _RankSEG

__all__ = ["RankSEG", "RankSEGd"]


class RankSEG(Transform):
    """RankSEG decision on a channel-first item: a drop-in for ``AsDiscrete(argmax=True)``.

    Parameters
    ----------
    metric, smooth, output_mode, solver, pruning_prob, **solver_params
        As for :class:`rankseg.RankSEG` (``eps``, ``unassigned_policy``,
        ``void_index``, ...).
    batch : bool
        The input is a batch ``(B, C, *spatial)`` (output ``(B, 1, *spatial)`` or
        ``(B, C, *spatial)``); default: one item ``(C, *spatial)`` as MONAI's
        post-transforms see after ``decollate_batch``.
    to_onehot : int, optional
        Multiclass only: return the one-hot ``(C, *spatial)`` of the label map; must
        equal the number of classes C (as in ``AsDiscrete(to_onehot=C)``).
    dtype : torch.dtype
        Output dtype (default float32, as ``AsDiscrete``).

    Examples
    --------
    >>> import torch
    >>> from monai.data import MetaTensor
    >>> from rankseg.monai import RankSEG
    >>> probs = MetaTensor(torch.tensor([[[0.9, 0.4, 0.2]], [[0.1, 0.6, 0.8]]]),
    ...                    affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    >>> labels = RankSEG(metric="dice")(probs)
    >>> labels.shape, labels.affine[0, 0].item()
    (torch.Size([1, 1, 3]), 2.0)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        metric: str = "dice",
        smooth: float = 0.0,
        output_mode: str = "multiclass",
        solver: str | None = None,
        pruning_prob: float | None = None,
        *,
        batch: bool = False,
        to_onehot: int | None = None,
        dtype: torch.dtype = torch.float32,
        **solver_params: Any,
    ) -> None:
        self.model = _RankSEG(metric, smooth, output_mode, solver, pruning_prob, **solver_params)
        if not isinstance(batch, (bool, np.bool_)):
            raise TypeError(f"batch must be a bool; got {type(batch).__name__}")
        if to_onehot is not None:
            if isinstance(to_onehot, bool) or not isinstance(to_onehot, int):
                raise TypeError(
                    f"to_onehot must be the number of classes (an int) or None; got {to_onehot!r}"
                )
            if self.model.output_mode != "multiclass":
                raise ValueError(
                    "to_onehot applies to output_mode='multiclass'; multilabel output is "
                    "already one mask per class"
                )
        if not isinstance(dtype, torch.dtype):
            raise TypeError(f"dtype must be a torch.dtype; got {dtype!r}")
        self.batch = bool(batch)
        self.to_onehot = to_onehot
        self.dtype = dtype

    def __call__(self, img: Any) -> Any:
        """Decide the labels (or masks) of one item (or a batch with ``batch=True``).

        Parameters
        ----------
        img : MetaTensor, torch.Tensor or ndarray
            Channel-first float probabilities ``(C, *spatial)`` (softmax for
            multiclass, sigmoid for multilabel), or ``(B, C, *spatial)``.

        Returns
        -------
        MetaTensor or torch.Tensor
            On the input's device, with its meta (see the module docstring).

        Raises
        ------
        ValueError
            If the input has fewer than 2 dims (3 with ``batch=True``), or
            ``to_onehot`` differs from the number of classes; and every error of
            :meth:`rankseg.RankSEG.predict` (values outside [0, 1], ...).
        TypeError
            If the input is not float16/32/64.
        """
        img = convert_to_tensor(img, track_meta=get_track_meta())
        t = img.as_tensor() if hasattr(img, "as_tensor") else img
        need = 3 if self.batch else 2
        if t.ndim < need:
            layout = "(B, C, *spatial)" if self.batch else "(C, *spatial)"
            raise ValueError(
                f"expected a channel-first {layout} input with at least one spatial axis; "
                f"got shape {tuple(t.shape)}"
            )
        nc = int(t.shape[1 if self.batch else 0])
        if self.to_onehot is not None and self.to_onehot != nc:
            raise ValueError(
                f"to_onehot={self.to_onehot} but the input has {nc} classes; one-hot labels "
                "of RankSEG have one channel per input class"
            )
        probs = t if self.batch else t[None]  # views: the input is never written
        if probs.device.type == "cuda" and self._on_gpu():
            probs = probs.contiguous()  # the GPU backend reads C-contiguous input in place
        elif probs.device.type != "cpu":
            probs = probs.detach().cpu()
        res = self.model.predict(probs)  # a tensor on probs' device (rankseg._arrays)
        if self.model.output_mode == "multiclass":
            if self.to_onehot is not None:
                classes = torch.arange(nc).view(1, nc, *([1] * (res.ndim - 1)))
                res = res[:, None] == classes  # void pixels match no class: all 0
            else:
                res = res[:, None]
        if not self.batch:
            res = res[0]
        out, *_ = convert_to_dst_type(res.to(self.dtype), img, dtype=self.dtype)
        return out

    def _on_gpu(self) -> bool:
        """Whether a CUDA item can be decided on its GPU (else on the host, same result)."""
        if self.model.presence is not None:  # presence rules run on the CPU path only
            return False
        from rankseg.cuda import load

        try:
            load()
        except (ImportError, RuntimeError):  # no numba-cuda, driver or GPU
            return False
        return True


class RankSEGd(MapTransform):
    """Dictionary form of :class:`RankSEG`: a drop-in for ``AsDiscreted(argmax=True)``.

    Parameters
    ----------
    keys : str or sequence of str
        Keys of the items to decide (e.g. ``"pred"``).
    allow_missing_keys : bool
        Do not raise for a missing key.
    **kwargs
        Every parameter of :class:`RankSEG` (``metric``, ``smooth``,
        ``output_mode``, ``solver``, ``pruning_prob``, ``batch``, ``to_onehot``,
        ``dtype``, solver parameters).
    """

    backend = RankSEG.backend

    def __init__(
        self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = RankSEG(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Decide every key of ``data`` (a new dict; the other items are kept).

        Parameters
        ----------
        data : mapping
            A MONAI data dictionary.

        Returns
        -------
        dict
            ``data`` with each key replaced by its labels or masks.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
