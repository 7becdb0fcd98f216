"""What the model adapters share: reading a model output's fields and checking tensors.

Private; imported by :mod:`rankseg.integration.transformers` and
:mod:`rankseg.integration.sam`, which import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rankseg._policies import FLOAT_DTYPE_NAMES

#: the torch dtypes of the model outputs decided: NumPy's float dtypes, and bfloat16
#: (decided in float32)
TORCH_FLOAT_DTYPES = (*(getattr(torch, name) for name in FLOAT_DTYPE_NAMES), torch.bfloat16)
SAM_OUTPUTS = frozenset(
    {
        "SamImageSegmentationOutput",
        "SamHQImageSegmentationOutput",
        "Sam2ImageSegmentationOutput",
        "Sam3ImageSegmentationOutput",
        "Sam3LiteTextImageSegmentationOutput",
    }
)


def field(outputs: Any, name: str) -> Any:
    """``outputs.name`` (a ModelOutput or any object) or ``outputs[name]`` (a mapping)."""
    if isinstance(outputs, (tuple, list)):
        raise ValueError(
            "outputs must be the model's structured output (a ModelOutput or a dict with "
            "named fields such as 'logits'); got a tuple/list: call the model with "
            "return_dict=True"
        )
    value = getattr(outputs, name, None)
    if value is None and isinstance(outputs, Mapping):
        value = outputs.get(name)
    return value


def class_names(obj: Any) -> set[str]:
    """Names of the classes of ``obj`` and of their bases (no transformers import)."""
    return {cls.__name__ for cls in type(obj).__mro__}


def check_tensor(
    value: Any, name: str, ndim: int | tuple[int, ...], shape: str, *, spatial: bool = True
) -> torch.Tensor:
    """``outputs.<name>``, checked: a finite real floating tensor of ``ndim`` dimensions.

    With ``spatial`` its last two dimensions (height, width) must be non-empty.
    """
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"outputs.{name} must be a torch.Tensor; got {type(value).__name__}")
    if value.dtype not in TORCH_FLOAT_DTYPES:
        raise TypeError(f"outputs.{name} must have a real floating dtype; got {value.dtype}")
    if value.ndim not in ndims:
        raise ValueError(f"outputs.{name} must have shape {shape}; got {tuple(value.shape)}")
    if value.device.type == "meta":
        raise ValueError(f"outputs.{name} is a meta tensor: it holds no values to decide on")
    if spatial and 0 in value.shape[-2:]:
        raise ValueError(f"outputs.{name} has an empty spatial dimension: {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"outputs.{name} must contain only finite values (found NaN or inf)")
    return value


def working(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cast the tensors to float32, or to float64 when one of them is float64."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(dtype) for t in tensors)
