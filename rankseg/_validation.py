"""Every check of user input and every error message, in one vocabulary.

Messages say what was wrong (with the offending value) and what is expected.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any, SupportsInt, cast

import numpy as np

from rankseg._policies import FLOAT_DTYPES

__all__ = [
    "BadValuesError",
    "ClassSumWarning",
    "as_probs",
    "bad_values_error",
    "check_band_bytes",
    "check_classes",
    "check_int",
    "check_mask_dtype",
    "check_name",
    "check_out",
    "check_out_kind",
    "check_probs_dtype",
    "check_probs_shape",
    "check_real",
    "check_return_info",
    "is_cuda_array",
    "label_dtype",
    "out_label_dtype",
    "raise_bad_values",
]


def _quote(choices: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in choices)


def check_name(value: Any, param: str, choices: Sequence[str]) -> str:
    """Normalize a case-insensitive name and check it is one of ``choices``.

    Parameters
    ----------
    value : object
        The name given by the user.
    param : str
        Parameter name, for the message.
    choices : sequence of str
        Accepted (lower-case) names.

    Returns
    -------
    str
        ``value.strip().lower()``.

    Raises
    ------
    TypeError
        If ``value`` is not a string.
    ValueError
        If it is not one of ``choices``.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"{param} must be a string, one of {_quote(choices)}; got {type(value).__name__}"
        )
    name = value.strip().lower()
    if name not in choices:
        raise ValueError(f"unknown {param} {value!r}; expected one of {_quote(choices)}")
    return name


def check_real(
    value: Any,
    param: str,
    *,
    lo: float,
    hi: float,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Check a real scalar lies in an interval and return it as a float.

    Parameters
    ----------
    value : object
        The user's value.
    param : str
        Parameter name, for the message.
    lo, hi : float
        Interval ends (``math.inf`` allowed).
    lo_open, hi_open : bool
        Whether each end is excluded.

    Returns
    -------
    float
        The value as a Python float.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (bools and complex numbers included).
    ValueError
        If it is NaN or outside the interval.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{param} must be a real number; got {type(value).__name__} {value!r}")
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    interval = f"{left}{lo:g}, {hi:g}{right}"
    try:
        v = float(value)
    except OverflowError:  # an int beyond the float range: outside every interval here
        digits = len(str(abs(int(cast(SupportsInt, value)))))  # numbers.Real lacks __int__
        raise ValueError(
            f"{param} must be in {interval}; got an integer of {digits} digits"
        ) from None
    too_low = v <= lo if lo_open else v < lo
    too_high = v >= hi if hi_open else v > hi
    if math.isnan(v) or too_low or too_high:
        raise ValueError(f"{param} must be in {interval}; got {value!r}")
    return v


def check_int(value: Any, param: str) -> int:
    """Check ``value`` is an integer (not a bool) and return it as ``int``.

    Parameters
    ----------
    value : object
        The user's value.
    param : str
        Parameter name, for the message.

    Returns
    -------
    int
        The value.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{param} must be an integer; got {type(value).__name__} {value!r}")
    return int(value)


def as_probs(probs: Any) -> Any:
    """Turn an array-like into an array of probabilities, checking its type and shape.

    Parameters
    ----------
    probs : array-like
        Anything with ``__array__`` (NumPy arrays, memmaps, CPU torch tensors), or
        a CUDA array already viewed as a numba device array (the API does that with
        :func:`rankseg.cuda.as_device_array`: this module never imports CUDA).

    Returns
    -------
    ndarray or numba device array
        A view of the input when possible (float16/32/64, native byte order,
        at least 3 dimensions, non-empty class and spatial axes; B may be 0).
        A CUDA input is returned as it is and must be C-contiguous.

    Raises
    ------
    TypeError
        If ``probs`` is not an array or not of a float dtype.
    ValueError
        If its shape is not ``(B, C, *spatial)`` with C >= 1 and non-empty spatial axes,
        or it is a non-contiguous CUDA array.
    """
    on_cuda = is_cuda_array(probs)
    lazy = getattr(probs, "__dask_graph__", None)
    if callable(lazy) and lazy() is not None:  # never computed (loaded whole) silently
        raise TypeError(
            f"probs is a lazy dask collection ({type(probs).__name__}); rankseg.predict "
            "works on arrays in memory. Use rankseg.dask.predict for a dask array (chunked, "
            "larger than memory) or rankseg.xarray.predict for a DataArray, or pass "
            "probs.compute() to load it"
        )
    if isinstance(probs, np.ma.MaskedArray):
        if np.ma.getmaskarray(probs).any():
            raise ValueError(
                "probs is a masked array with masked values; rankseg decides every pixel "
                "and has no notion of a masked one. Fill them with what they mean (e.g. "
                "probs.filled(0.0) for 'not this class') or decide an unmasked crop"
            )
        probs = probs.data
    if on_cuda:
        # checked first: CuPy arrays and torch CUDA tensors also define __array__ (raising)
        arr = probs
    elif not hasattr(probs, "__array__"):
        raise TypeError(
            "probs must be an array with __array__ (NumPy array, memmap, CPU torch tensor) "
            "or __cuda_array_interface__ (CuPy, torch CUDA tensor, numba device array) of "
            f"shape (B, C, *spatial); got {type(probs).__name__}"
        )
    else:
        try:
            arr = np.asarray(probs)
        except Exception as exc:  # e.g. torch tensors that require grad, bfloat16
            raise TypeError(
                f"probs of type {type(probs).__name__} could not be viewed as a NumPy array "
                f"({exc}); pass a NumPy array or a detached CPU tensor of "
                "float16/float32/float64"
            ) from exc
    check_probs_dtype(arr.dtype)
    if not arr.dtype.isnative:
        if on_cuda:
            raise TypeError(f"probs is a CUDA array of non-native byte order {arr.dtype}")
        arr = arr.astype(arr.dtype.newbyteorder("="))
    check_probs_shape(arr.shape)
    if on_cuda and not arr.is_c_contiguous():
        raise ValueError(
            "probs is a non-contiguous CUDA array; the GPU backend reads C-contiguous input "
            "in place (make it contiguous first, e.g. cupy.ascontiguousarray or "
            "tensor.contiguous())"
        )
    return arr


def check_probs_dtype(dtype: Any) -> None:
    """Check the dtype of probabilities: float16, float32 or float64, any byte order.

    Parameters
    ----------
    dtype : numpy.dtype
        The input's dtype.

    Raises
    ------
    TypeError
        If it is not one of the three float dtypes.
    """
    dtype = np.dtype(dtype)
    if dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(
            f"probs must have dtype float16, float32 or float64; got {dtype}"
            + (
                " (integer or boolean input: convert label maps to probabilities first)"
                if dtype.kind in "iub"
                else ""
            )
        )


def check_probs_shape(shape: tuple[int, ...]) -> None:
    """Check the shape of probabilities: ``(B, C, *spatial)``, C >= 1, spatial sizes >= 1.

    Parameters
    ----------
    shape : tuple of int
        The input's shape (B may be 0).

    Raises
    ------
    ValueError
        If there is no spatial axis, no class, or an empty spatial axis.
    """
    shape = tuple(shape)
    if len(shape) < 3:
        raise ValueError(
            "probs must have shape (B, C, *spatial) with at least one spatial axis; "
            f"got shape {shape} ({len(shape)} dimensions)"
        )
    if shape[1] == 0:
        raise ValueError(f"probs has zero classes (shape {shape}); expected C >= 1 on axis 1")
    if any(s == 0 for s in shape[2:]):
        raise ValueError(
            f"probs has an empty spatial axis (shape {shape}); every spatial size must be >= 1"
        )


def check_return_info(return_info: Any, metric: str) -> None:
    """Check ``return_info``: a bool, True only for a metric with an objective.

    Parameters
    ----------
    return_info : object
        The caller's ``return_info=``.
    metric : str
        The checked metric name.

    Raises
    ------
    TypeError
        If ``return_info`` is not a bool.
    ValueError
        If it is True with ``metric='acc'`` (no per-class objective to report).
    """
    if not isinstance(return_info, (bool, np.bool_)):
        raise TypeError(f"return_info must be a bool; got {type(return_info).__name__}")
    if return_info and metric == "acc":
        raise ValueError(
            "return_info=True needs metric 'dice' or 'iou'; accuracy solvers have no "
            "per-class objective to report"
        )


def check_classes(nc: int, multiclass: bool, void_index: int | None) -> None:
    """Check the number of classes against the output mode and the void label.

    Parameters
    ----------
    nc : int
        Number of classes C.
    multiclass : bool
        Whether the output is a label map.
    void_index : int or None
        The label of unassigned pixels when they get one (``unassigned_policy='void'``).

    Raises
    ------
    ValueError
        If a label map is asked of one class, or ``void_index`` lies in ``[0, C)``.
    """
    if multiclass and nc == 1:
        raise ValueError(
            "multiclass output needs at least 2 classes; got C = 1. For a single "
            "foreground class use output_mode='multilabel' (boolean mask)"
        )
    if void_index is not None and 0 <= void_index < nc:
        raise ValueError(
            f"void_index must lie outside [0, {nc}) so it cannot be confused with a class; "
            f"got {void_index}"
        )


def check_mask_dtype(dtype: Any) -> None:
    """Check ``dtype=`` for multilabel output: None or bool (masks are bool).

    Parameters
    ----------
    dtype : dtype-like or None
        The caller's ``dtype=``.

    Raises
    ------
    TypeError
        If ``dtype`` is not a dtype at all.
    ValueError
        If it is a dtype other than bool.
    """
    if dtype is None:
        return
    try:
        is_bool = np.dtype(dtype) == np.bool_
    except TypeError:  # not a dtype at all
        raise TypeError(
            "dtype applies to multiclass label maps; multilabel masks are bool, got "
            f"dtype={dtype!r}, which is not a dtype"
        ) from None
    if not is_bool:
        raise ValueError(
            "dtype applies to multiclass label maps; multilabel masks are bool, "
            f"got dtype={dtype!r}"
        )


def check_out_kind(out: Any, on_cuda: bool) -> None:
    """Check that ``out=`` is a host NumPy array, given for host output only.

    Parameters
    ----------
    out : object
        The caller's ``out=`` (after CPU tensors were viewed as NumPy arrays), not None.
    on_cuda : bool
        Whether the input is a CUDA array (its output is a new device array).

    Raises
    ------
    TypeError
        If the input is on CUDA, or ``out`` is not a NumPy array.
    """
    if on_cuda:
        raise TypeError("out applies to host output; a CUDA input gives a new numba device array")
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (or memmap); got {type(out).__name__}")


def out_label_dtype(out: np.ndarray) -> np.dtype:
    """Return the label dtype an ``out=`` array asks for (multiclass output, no ``dtype=``).

    Parameters
    ----------
    out : ndarray
        The caller's ``out=``.

    Returns
    -------
    numpy.dtype
        ``out.dtype`` (its range is checked by :func:`label_dtype`).

    Raises
    ------
    TypeError
        If ``out`` is not of an integer dtype.
    ValueError
        If its dtype is not in this machine's byte order.
    """
    if out.dtype.kind not in "iu":
        raise TypeError(
            f"out has dtype {out.dtype}; expected an integer dtype for the label map (e.g. int64)"
        )
    if not out.dtype.isnative:
        raise ValueError(
            f"out has dtype {out.dtype.str}; expected an integer dtype in this "
            f"machine's byte order (e.g. {out.dtype.newbyteorder('=')})"
        )
    return out.dtype


def is_cuda_array(obj: Any) -> bool:
    """Whether ``obj`` is a CUDA array, without importing CUDA.

    Parameters
    ----------
    obj : object
        Anything.

    Returns
    -------
    bool
        True for objects with ``__cuda_array_interface__`` (CuPy, torch CUDA tensors,
        numba device arrays) and for numba's simulated device arrays.
    """
    return hasattr(obj, "__cuda_array_interface__") or bool(
        getattr(type(obj), "__cuda_ndarray__", False)
    )


def raise_bad_values(arr: Any, row: int) -> None:
    """Raise the error describing invalid values found in ``row`` of ``arr``.

    Parameters
    ----------
    arr : ndarray, shape (B, C, *spatial)
        The probabilities (or any object with ``shape`` whose ``arr[b, c]`` is
        array-like: the CUDA driver's view of device rows).
    row : int
        Flat index ``b * C + c`` of a row known to hold a NaN, an infinity or a
        value outside [0, 1].

    Raises
    ------
    BadValuesError
        Always.
    """
    nc = arr.shape[1]
    b, c = divmod(row, nc)
    raise bad_values_error(arr[b, c], b, c)


def bad_values_error(
    values: Any,
    sample: int,
    class_: int,
    chunk: tuple[int, ...] | None = None,
    spatial: tuple[tuple[int, int], ...] | None = None,
) -> BadValuesError:
    """Return the :class:`BadValuesError` describing the invalid ``values`` of a row.

    Parameters
    ----------
    values : array_like
        The row's probabilities (or the part of it in ``chunk``), known to hold a NaN,
        an infinity or a value outside [0, 1].
    sample, class_ : int
        The row's sample (within the batch predicted) and class.
    chunk, spatial : tuple or None
        For dask input: the block index of the chunk, and its ``(start, stop)`` on
        each spatial axis.

    Returns
    -------
    BadValuesError
        NaN before inf before out-of-range, as the message says; for out-of-range
        values ``low`` and ``high`` are the min and max of ``values``.
    """
    vals = np.asarray(values, dtype=np.float64)
    if np.isnan(vals).any():
        return BadValuesError("nan", sample, class_, chunk, spatial)
    if np.isinf(vals).any():
        return BadValuesError("inf", sample, class_, chunk, spatial)
    lo, hi = float(vals.min()), float(vals.max())
    return BadValuesError("range", sample, class_, chunk, spatial, lo, hi)


@functools.lru_cache(maxsize=16)
def _iinfo(dt: np.dtype) -> np.iinfo:
    """``np.iinfo`` of an integer dtype, kept (a call in every small predict otherwise)."""
    return np.iinfo(dt)


def label_dtype(dtype: Any, max_label: int, min_label: int = 0) -> np.dtype:
    """Resolve the output dtype of a label map.

    Parameters
    ----------
    dtype : dtype-like or None
        The requested dtype; None means int64.
    max_label, min_label : int
        The range of labels that may be written.

    Returns
    -------
    numpy.dtype
        An integer dtype holding every label.

    Raises
    ------
    TypeError
        If ``dtype`` is not an integer dtype.
    ValueError
        If it cannot hold every label.
    """
    if dtype is None:
        dt = np.dtype(np.int64)
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(
                f"dtype must be an integer dtype for label maps; got {dtype!r}"
            ) from exc
        if dt.kind not in "iu":
            raise TypeError(
                f"dtype must be an integer dtype for label maps (e.g. uint8, int64); got {dt}"
            )
        if not dt.isnative:
            raise TypeError(
                f"dtype {dt.str} is not in this machine's byte order; expected a native "
                f"integer dtype such as {dt.newbyteorder('=')} (use .astype({dt.str!r}) on "
                "the result for another byte order)"
            )
    info = _iinfo(dt)
    if max_label > info.max or min_label < info.min:
        raise ValueError(
            f"dtype {dt} cannot hold every label (labels span {min_label}..{max_label}); "
            f"choose an integer dtype with range [{info.min}, {info.max}] covering them"
        )
    return dt


def check_out(
    out: Any, shape: tuple[int, ...], dtype: np.dtype, probs: np.ndarray, original: Any = None
) -> np.ndarray:
    """Check a preallocated output array.

    Parameters
    ----------
    out : object
        The user's ``out=`` argument.
    shape : tuple of int
        The required shape.
    dtype : numpy.dtype
        The required dtype.
    probs : ndarray
        The input, which ``out`` must not overlap.
    original : object, optional
        The user's input before conversion (a byte-swapped or otherwise converted
        copy in ``probs`` does not share its memory); ``out`` must not overlap it
        either.

    Returns
    -------
    ndarray
        ``out`` itself.

    Raises
    ------
    TypeError
        If ``out`` is not a NumPy array.
    ValueError
        If its shape, dtype or layout do not fit, or it overlaps the input.
    """
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array (or memmap); got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype}; expected {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only; expected a writeable array")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if np.may_share_memory(out, probs) or (
        isinstance(original, np.ndarray) and np.may_share_memory(out, original)
    ):
        raise ValueError(
            "out overlaps probs; the input is never modified, so pass a separate array"
        )
    return out


class BadValuesError(ValueError):
    """Probabilities that hold a NaN, an infinity or a value outside [0, 1].

    Raised by :func:`rankseg.predict` and :meth:`rankseg.RankSEG.predict` (CPU and
    GPU), by :func:`rankseg.dask.predict` and by :func:`rankseg.xarray.predict` (for
    dask-backed input when the result is computed).  It is a :class:`ValueError`, so
    ``except ValueError`` catches it too; its attributes say which row is bad without
    parsing the message.

    Parameters
    ----------
    kind : {'nan', 'inf', 'range'}
        What was found: a NaN, an infinity, or a finite value outside [0, 1] (checked
        in that order: a row holding both NaN and 1.5 is reported as NaN).
    sample : int
        The sample (index along the batch axis of the array predicted; for
        :func:`rankseg.xarray.predict` the flat, C-order number over the sample dims).
    class_ : int
        The class (index along the class axis).  Spelled with a trailing underscore
        because ``class`` is a Python keyword.
    chunk : tuple of int or None
        For :func:`rankseg.dask.predict`: the block index (``x.blocks[chunk]``) of the
        chunk where the values were found; None for in-memory input.
    spatial : tuple of (int, int) or None
        For dask input: the chunk's ``(start, stop)`` on each spatial axis; else None.
    low, high : float
        For ``kind='range'``: the min and max of the row (for dask input: of its part
        in ``chunk``); NaN otherwise.
    where : str or None
        How the message names the row; default ``"sample {sample}, class {class_}"``
        (:func:`rankseg.xarray.predict` names dims and coordinates instead:
        ``case='p5', class='liver'``).

    Attributes
    ----------
    kind, sample, class_, chunk, spatial, low, high, where
        As given (``where`` resolved to its default).

    Examples
    --------
    >>> import numpy as np, rankseg
    >>> p = np.full((2, 3, 4), 1 / 3)
    >>> p[1, 2, 0] = np.nan
    >>> try:
    ...     rankseg.predict(p)
    ... except rankseg.BadValuesError as err:
    ...     print(err.kind, err.sample, err.class_, err.chunk)
    nan 1 2 None
    """

    def __init__(
        self,
        kind: str,
        sample: int,
        class_: int,
        chunk: tuple[int, ...] | None = None,
        spatial: tuple[tuple[int, int], ...] | None = None,
        low: float = math.nan,
        high: float = math.nan,
        where: str | None = None,
    ) -> None:
        if kind not in ("nan", "inf", "range"):
            raise ValueError(f"kind must be 'nan', 'inf' or 'range'; got {kind!r}")
        self.kind = kind
        self.sample = int(sample)
        self.class_ = int(class_)
        self.chunk = None if chunk is None else tuple(int(i) for i in chunk)
        self.spatial = None if spatial is None else tuple((int(a), int(e)) for a, e in spatial)
        self.low = float(low)
        self.high = float(high)
        self.where = f"sample {self.sample}, class {self.class_}" if where is None else where
        super().__init__(self._message())

    def _message(self) -> str:
        at = self.where
        if self.chunk is not None:
            at += f", in chunk {self.chunk}"
            if self.spatial is not None:
                at += f" (spatial [{', '.join(f'{a}:{e}' for a, e in self.spatial)}])"
        if self.kind != "range":
            what = "NaN" if self.kind == "nan" else "inf"
            return f"probs contains {what} (first at {at}); expected finite probabilities in [0, 1]"
        return (
            f"probs has values outside [0, 1] (at {at}: min {self.low:g}, max {self.high:g}); "
            "expected probabilities: apply softmax (multiclass) or sigmoid (multilabel) to "
            "logits first"
        )

    def relocated(self, sample: int, where: str) -> BadValuesError:
        """Return the same error naming its row otherwise.

        Parameters
        ----------
        sample : int
            The row's sample in the larger array the caller sees (the batch predicted
            was one block of it).
        where : str
            How the message names the row (e.g. ``"case='p5', class='liver'"``).

        Returns
        -------
        BadValuesError
            A new error; ``kind``, ``class_``, ``chunk``, ``spatial``, ``low`` and
            ``high`` are kept.
        """
        return BadValuesError(
            self.kind, sample, self.class_, self.chunk, self.spatial, self.low, self.high, where
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled by dask's distributed scheduler: rebuild from the attributes
        args = (self.kind, self.sample, self.class_, self.chunk, self.spatial)
        return (type(self), (*args, self.low, self.high, self.where))


class ClassSumWarning(UserWarning):
    """Multiclass probabilities whose class sums are far from 1: likely a wrong layout."""


#: relative tolerance on the mean class sum (multiclass): far above float16's rounding
#: of a softmax (2**-11 per value, ~5e-4 on a sum of 1), far below what a wrong axis
#: order gives (a (C, X, Y, Z) item read as B = C samples of X classes sums to
#: X times a class's mean probability)
CLASS_SUM_TOL = 0.01


def check_class_sums(mu: np.ndarray, d: int) -> None:
    """Warn when a sample's class probabilities do not sum to about 1 on average.

    Parameters
    ----------
    mu : ndarray, shape (B, C)
        Σ_j p over the pixels of each (sample, class) row, accumulated in float64
        by the row statistics the solvers compute anyway (no extra pass).
    d : int
        Pixels per row.

    Warns
    -----
    ClassSumWarning
        If for some sample ``|Σ_c mu[b, c] / d - 1| > CLASS_SUM_TOL``, naming the
        sample and the likely fix (a missing batch axis, or sigmoid probabilities
        that belong with ``output_mode='multilabel'``).
    """
    if d == 0 or mu.size == 0:
        return
    mean_sum = mu.sum(axis=1) / d
    off = np.abs(mean_sum - 1.0) > CLASS_SUM_TOL
    if not off.any():
        return
    bad = np.flatnonzero(off)
    import warnings

    b = int(bad[0])
    nb, nc = mu.shape
    warnings.warn(
        f"multiclass input of shape (B={nb}, C={nc}, ...): the class probabilities of sample "
        f"{b} sum to {mean_sum[b]:.4g} on average over its pixels, not 1 "
        f"({bad.size} of {nb} samples off by more than {CLASS_SUM_TOL:g}). Is the input laid "
        "out as (B, C, *spatial)? A single (C, *spatial) item (a MONAI post-transform "
        "item, an nnU-Net case) needs its batch axis: probs[None] (or use "
        "rankseg.monai.RankSEG). Independent per-class probabilities (sigmoid) belong "
        "with output_mode='multilabel'.",
        ClassSumWarning,
        stacklevel=4,
    )


def check_threads(value: Any, param: str) -> int:
    """Check a thread count: an integer >= 1.

    Parameters
    ----------
    value : object
        The user's value.
    param : str
        Parameter name, for the message.

    Returns
    -------
    int
        The count.

    Raises
    ------
    TypeError
        If it is not an integer (bools and floats are refused).
    ValueError
        If it is below 1.
    """
    count = check_int(value, param)
    if count < 1:
        raise ValueError(f"{param} must be at least 1 (a number of threads); got {count}")
    return count


def check_band_bytes(max_band_bytes: Any) -> int:
    """Check the ``max_band_bytes`` budget of the chunked path: an integer >= 1.

    Parameters
    ----------
    max_band_bytes : int
        The caller's value.

    Returns
    -------
    int
        The budget in bytes.

    Raises
    ------
    TypeError
        If it is not an integer (bools and floats are refused).
    ValueError
        If it is below 1.
    """
    value = check_int(max_band_bytes, "max_band_bytes")
    if value < 1:
        raise ValueError(f"max_band_bytes must be at least 1 (bytes); got {value}")
    return value


class VolumeAsBatchWarning(UserWarning):
    """Label maps ``(B, H, W)`` that look like one volume ``(Z, Y, X)`` read as a batch."""


#: the volume-as-batch check looks at label maps with at least this many items
VOLUME_CHECK_MIN_ITEMS = 8
#: ... and warns when neighbouring items disagree on at most this fraction of the
#: pixels on which items half the stack apart disagree.  Measured on the seeded
#: workloads (rankseg.datasets): slices of a volume 0.05-0.06 (ct3d, tumor3d), 0.23
#: with every 4th slice (4x thicker slices); independent 2-D maps 0.96-1.09 (voc2d,
#: ct3d slices of different volumes): nothing in between.
VOLUME_CHECK_RATIO = 0.5
#: pixels compared at most (a strided subsample of each item beyond this)
_VOLUME_CHECK_PIXELS = 1 << 22


def check_volume_as_batch(labels: np.ndarray, stacklevel: int) -> None:
    """Warn when a 3-D integer label array looks like one volume, not a batch of 2-D maps.

    The rule: for ``labels`` of shape ``(B, H, W)`` with ``B >= VOLUME_CHECK_MIN_ITEMS``,
    the fraction ``d1`` of pixels that differ between neighbouring items
    (``labels[b]`` and ``labels[b + 1]``) is compared with the fraction ``dk`` for
    items ``k = B // 2`` apart.  The slices of a volume change little from one to the
    next and much across the stack (``d1 << dk``); independent images are as unlike
    their neighbours as any other item (``d1 ≈ dk``).  It warns when
    ``0 < d1 <= VOLUME_CHECK_RATIO * dk``.  A stack of consecutive video frames, or
    of the slices of one scan, is a volume by this rule too.

    Parameters
    ----------
    labels : ndarray
        The target label maps (the check reads them only).
    stacklevel : int
        ``stacklevel`` of :func:`warnings.warn`, pointing at the user's call.

    Warns
    -----
    VolumeAsBatchWarning
        Saying what was assumed (B items of H x W) and how to pass one volume.
    """
    if labels.ndim != 3 or labels.dtype.kind not in "iu":
        return
    nb, h, w = labels.shape
    if nb < VOLUME_CHECK_MIN_ITEMS:
        return
    step = max(1, math.ceil(math.sqrt(labels.size / _VOLUME_CHECK_PIXELS)))
    t = labels[:, ::step, ::step]
    k = nb // 2
    d1 = float(np.count_nonzero(t[1:] != t[:-1])) / ((nb - 1) * t[0].size)
    dk = float(np.count_nonzero(t[k:] != t[:-k])) / ((nb - k) * t[0].size)
    if not (0.0 < d1 <= VOLUME_CHECK_RATIO * dk):
        return
    import warnings

    warnings.warn(
        f"label maps of shape {labels.shape} were read as a batch of {nb} 2-D maps of "
        f"{h} x {w}, scored one by one, but they look like the slices of one volume "
        f"(neighbouring items differ on {d1:.2%} of the pixels, items {k} apart on "
        f"{dk:.2%}). To score one (Z, Y, X) volume pass pred[None] and target[None] (or "
        "batch=False); for a batch of 2-D maps pass batch=True.",
        VolumeAsBatchWarning,
        stacklevel=stacklevel + 1,
    )
