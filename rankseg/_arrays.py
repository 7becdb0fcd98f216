"""The input's array kind, and the result handed back in that kind (NumPy, torch, CuPy).

One home for what :func:`rankseg.predict` does with array libraries other than NumPy:

* :func:`prepare` looks at the input once and returns what the front end decides on
  (a NumPy view of a CPU tensor, the CUDA tensor itself for the GPU backend) and an
  :class:`ArrayKind` saying what the caller gave;
* :func:`restore` turns the result (a NumPy array, or a numba device array from the
  GPU backend) back into that kind, on the input's device, without copying.

Torch and CuPy are never imported here: an object is a tensor only if ``torch`` is
already in :data:`sys.modules` (it cannot be one otherwise) and it is an instance of
``torch.Tensor``; likewise ``cupy.ndarray``.  ``import rankseg`` imports neither.

Torch inputs (docs/coming_from_torch.rst):

* gradients are never touched: the tensor is detached (a view; the input is never
  modified and keeps its ``requires_grad``);
* ``bfloat16`` is converted to float32 (one copy, on the tensor's device; NumPy and
  numba have no bfloat16), then decided like float32 input;
* CPU tensors are read through ``Tensor.numpy()`` (zero-copy), the result comes back
  through :func:`torch.from_numpy` (zero-copy): label maps int64 and masks bool, as
  the torch package returns them;
* CUDA tensors go to the GPU backend through ``__cuda_array_interface__``; its output
  is allocated by torch (``rankseg.cuda._memory``), so the tensor that owns it is
  returned (else :func:`torch.as_tensor` wraps the device memory, zero-copy);
* other devices (MPS, XPU, meta, ...) are refused with a ValueError naming the fix:
  rankseg computes on the CPU and on CUDA GPUs only, and a silent host round trip
  would hide a copy each way on every call.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ArrayKind", "as_numpy_dtype", "prepare", "prepare_out", "restore"]


@dataclass(frozen=True)
class ArrayKind:
    """What the caller passed: the library of the input and its device.

    Attributes
    ----------
    lib : {'torch', 'cupy', 'other'}
        ``'other'``: NumPy arrays, memmaps, numba device arrays and every other
        array-like, whose results are returned as the backends give them (NumPy
        arrays on the host, numba device arrays on the GPU).
    device : object
        The ``torch.device`` of a tensor; None otherwise.
    """

    lib: str
    device: Any = None


_OTHER = ArrayKind("other")


def _loaded(name: str) -> Any:
    """Return the module ``name`` if the process has imported it, else None."""
    return sys.modules.get(name)


def torch_tensor_module(obj: Any) -> Any:
    """Return the torch module if ``obj`` is a torch tensor, else None (never imports torch).

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    module or None
        ``torch`` when ``obj`` is a ``torch.Tensor`` (subclasses such as MONAI's
        ``MetaTensor`` included).
    """
    torch = _loaded("torch")
    tensor = getattr(torch, "Tensor", None)
    if tensor is not None and isinstance(obj, tensor):
        return torch
    return None


def _is_cupy(obj: Any) -> Any:
    cupy = _loaded("cupy")
    nd = getattr(cupy, "ndarray", None)
    return cupy if nd is not None and isinstance(obj, nd) else None


_CPU_KIND: dict[int, ArrayKind] = {}


def _cpu_tensor_kind(torch: Any) -> ArrayKind:
    """Return the :class:`ArrayKind` of a CPU tensor (one per torch module, reused)."""
    kind = _CPU_KIND.get(id(torch))
    if kind is None:
        kind = _CPU_KIND[id(torch)] = ArrayKind("torch", torch.device("cpu"))
    return kind


def prepare(probs: Any) -> tuple[Any, ArrayKind]:
    """Return what the front end decides on, and the kind of the caller's input.

    Parameters
    ----------
    probs : object
        The caller's input.

    Returns
    -------
    tuple
        ``(array, kind)``: for a CPU tensor a NumPy view of it (float32 copy for
        bfloat16), for a CUDA tensor the detached tensor itself; any other input
        unchanged.

    Raises
    ------
    ValueError
        For a tensor on a device other than the CPU or a CUDA GPU.
    TypeError
        For a sparse or otherwise non-strided tensor.
    """
    torch = torch_tensor_module(probs)
    if torch is None:
        cupy = _is_cupy(probs)
        return probs, (ArrayKind("cupy") if cupy is not None else _OTHER)
    if type(probs) is torch.Tensor:
        # The common case in one torch call: a plain CPU tensor without autograd
        # history, conj/neg bits or an unusual dtype.  Every torch call costs ~10 us
        # on a cache the call's pass over the input has just cleared; Tensor.numpy()
        # raises for everything else (CUDA, MPS, sparse, requires_grad, bfloat16),
        # which takes the checks below.
        try:
            return probs.numpy(), _cpu_tensor_kind(torch)
        except (TypeError, RuntimeError):
            pass
    t = probs.detach()  # a view without autograd history; probs keeps requires_grad
    if type(t) is not torch.Tensor:  # a subclass (MetaTensor): plain tensor view
        t = t.as_subclass(torch.Tensor)
    device = t.device
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"probs is a torch tensor on device {str(device)!r}; rankseg computes on the CPU "
            "and on CUDA GPUs only. Move it first (probs.cpu(), or probs.cuda()) and the "
            "result back (result.to(probs.device)) if you need it there"
        )
    if t.layout != torch.strided:
        raise TypeError(
            f"probs is a torch tensor with layout {t.layout}; expected a dense (strided) "
            "tensor (use probs.to_dense())"
        )
    if t.dtype == torch.bfloat16:  # NumPy and numba have no bfloat16: decide in float32
        t = t.float()
    kind = ArrayKind("torch", device)
    if device.type == "cuda":
        return t, kind
    try:
        return t.resolve_conj().resolve_neg().numpy(), kind
    except (TypeError, RuntimeError) as exc:  # quantized tensors and the like
        raise TypeError(
            f"probs is a torch tensor of dtype {t.dtype} that cannot be read as a NumPy "
            f"array ({exc}); expected float16, bfloat16, float32 or float64"
        ) from exc


def prepare_out(out: Any) -> Any:
    """Return the NumPy array the front end writes into for ``out=``.

    Parameters
    ----------
    out : ndarray, CPU torch tensor or None
        The caller's ``out=``.  A CPU tensor is written through its zero-copy
        NumPy view; the caller gets the tensor itself back.

    Returns
    -------
    object
        ``out.numpy()`` for a CPU tensor, ``out`` otherwise (checked later).

    Raises
    ------
    TypeError
        For a tensor on another device, or one that requires grad.
    """
    torch = torch_tensor_module(out)
    if torch is None:
        return out
    if out.device.type != "cpu":
        raise TypeError(
            f"out is a torch tensor on device {str(out.device)!r}; out= takes host output "
            "(a NumPy array or a CPU tensor). Leave out unset for CUDA input: the result "
            "is a new tensor on the input's device"
        )
    if out.requires_grad:
        raise TypeError(
            "out is a torch tensor that requires grad; the decision writes into it in place, "
            "which autograd cannot record: pass a tensor with requires_grad=False"
        )
    if type(out) is not torch.Tensor:
        out = out.as_subclass(torch.Tensor)
    return out.numpy()


def as_numpy_dtype(dtype: Any) -> Any:
    """Return a torch dtype (``torch.int32``) as the NumPy dtype; anything else unchanged.

    Parameters
    ----------
    dtype : object
        The caller's ``dtype=``.

    Returns
    -------
    object
        The NumPy dtype of a torch dtype that NumPy has; ``dtype`` otherwise (the
        front end's checks then say what is wrong).
    """
    torch = _loaded("torch")
    if torch is None or not isinstance(dtype, torch.dtype):
        return dtype
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except (TypeError, RuntimeError):
        return dtype


def _owner(res: Any, cls: Any) -> Any:
    """Return the library array owning a numba device array's memory, if it is exactly it."""
    owner: Any = getattr(getattr(res, "gpu_data", None), "owner", None)
    if not isinstance(owner, cls):
        return None
    cai = owner.__cuda_array_interface__
    same = (
        cai["data"][0] == res.__cuda_array_interface__["data"][0]
        and tuple(cai["shape"]) == tuple(res.shape)
        and np.dtype(cai["typestr"]) == res.dtype
    )
    return owner if same else None


def restore(result: Any, kind: ArrayKind) -> Any:
    """Return a backend's result in the caller's kind, on the input's device, zero-copy.

    Parameters
    ----------
    result : ndarray or numba device array
        Labels or masks from the CPU path (NumPy) or the GPU backend (numba).
    kind : ArrayKind
        From :func:`prepare`.

    Returns
    -------
    object
        A torch tensor, CuPy array, or ``result`` itself for ``kind.lib == 'other'``.
    """
    if kind.lib == "other":
        return result
    if kind.lib == "torch":
        torch = sys.modules["torch"]
        if isinstance(result, np.ndarray):
            t = torch.from_numpy(result)
            if kind is _CPU_KIND.get(id(torch)) or kind.device.type == "cpu":
                return t
            return t.to(kind.device)
        owned = _owner(result, torch.Tensor)
        if owned is not None:
            return owned
        return torch.as_tensor(result, device=kind.device)  # via __cuda_array_interface__
    cupy = sys.modules["cupy"]
    if isinstance(result, np.ndarray):  # device='cpu' was asked for: back to the GPU
        return cupy.asarray(result)
    owned = _owner(result, cupy.ndarray)
    return owned if owned is not None else cupy.asarray(result)
