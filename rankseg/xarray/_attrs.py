"""The attributes of :func:`rankseg.xarray.predict`'s outputs.

The labels' CF categorical attrs (``flag_values``, ``flag_meanings`` from the class
coordinate), the masks' name, the info Dataset's described variables, the parameters
used as ``rankseg_*`` attrs, and the input attrs dropped because they describe the
probability values.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import xarray as xr

import rankseg
from rankseg._api import RankSEG
from rankseg._policies import label_values, void_label
from rankseg.xarray._blocks import INFO_FIELDS

#: attributes that describe the *probability values* and would be wrong on labels/masks
VALUE_ATTRS = frozenset(
    {
        "units",
        "standard_name",
        "long_name",
        "valid_min",
        "valid_max",
        "valid_range",
        "actual_range",
        "flag_values",
        "flag_masks",
        "flag_meanings",
        "_FillValue",
        "missing_value",
        "scale_factor",
        "add_offset",
    }
)
_WHITESPACE = re.compile(r"\s+")


def _class_names(da: xr.DataArray, class_dim: Hashable) -> list[str]:
    nc = da.sizes[class_dim]
    if class_dim in da.coords:
        raw = [str(v) for v in np.asarray(da.coords[class_dim].values).tolist()]
    else:
        raw = [f"{class_dim}_{i}" for i in range(nc)]
    names = []
    for i, name in enumerate(raw):
        name = _WHITESPACE.sub("_", name.strip())
        names.append(name or f"{class_dim}_{i}")
    return names


def param_attrs(model: RankSEG, solver_params: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "rankseg_metric": model.metric,
        "rankseg_solver": model.solver,
        "rankseg_output_mode": model.output_mode,
    }
    if model.metric != "acc":
        attrs["rankseg_smooth"] = model.smooth
        attrs["rankseg_pruning_prob"] = model.pruning_prob
        if model.empty != "zero":
            attrs["rankseg_empty"] = model.empty
        if model.output_mode == "multiclass":
            attrs["rankseg_unassigned_policy"] = model.unassigned_policy
            if void_label(model) is not None:
                attrs["rankseg_void_index"] = model.void_index
    for key, value in sorted(solver_params.items()):
        attrs.setdefault(f"rankseg_{key}", getattr(model, key, value))
    attrs["rankseg_version"] = rankseg.__version__
    return attrs


_OBJECTIVE = {"dice": "Dice", "iou": "IoU", "acc": "accuracy"}


def labeled_output(
    preds: xr.DataArray,
    da: xr.DataArray,
    class_dim: Hashable,
    model: RankSEG,
    out_dtype: np.dtype,
    base: dict[Hashable, Any],
    run: dict[str, Any],
) -> xr.DataArray:
    """Name the labels (CF categorical attrs) or masks; put them in the input's dim order."""
    objective = _OBJECTIVE[model.metric]
    if model.output_mode != "multiclass":
        preds = preds.transpose(*da.dims)
        preds.attrs = {
            **base,
            "long_name": f"class masks maximizing the expected {objective} (RankSEG)",
            **run,
        }
        preds.name = "masks"
        return preds
    names = _class_names(da, class_dim)
    values = label_values(da.sizes[class_dim], model)
    if void_label(model) is not None:
        names.append("void")
    preds = preds.transpose(*(d for d in da.dims if d != class_dim))
    preds.attrs = {
        **base,
        "long_name": f"class labels maximizing the expected {objective} (RankSEG)",
        "flag_values": np.array(values, dtype=out_dtype),
        "flag_meanings": " ".join(names),
        **run,
    }
    preds.name = "labels"
    return preds


def info_dataset(
    fields: Iterable[xr.DataArray],
    samples: tuple[Hashable, ...],
    class_dim: Hashable,
    model: RankSEG,
    base: dict[Hashable, Any],
    run: dict[str, Any],
) -> xr.Dataset:
    """Gather the per-(sample, class) info into a Dataset of described variables."""
    objective = _OBJECTIVE[model.metric]
    descriptions = {
        "tau": "selected volume (pixels) of the class mask before multiclass resolution",
        "threshold": "smallest selected probability (NaN for an empty mask)",
        "score": f"solver objective at the selected volume: estimated expected {objective}",
        "pruned": "class skipped because its largest probability is <= pruning_prob",
    }
    info_vars = {}
    for field, arr in zip(INFO_FIELDS, fields, strict=True):
        arr = arr.transpose(*samples, class_dim)
        arr.attrs = {"long_name": descriptions[field]}
        info_vars[field] = arr.rename(field)
    return xr.Dataset(info_vars, attrs={**base, **run})
