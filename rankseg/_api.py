"""The NumPy front end: parameters, validation, the plan of a call, and the choice of driver."""

from __future__ import annotations

import os
import warnings
from typing import Any, Literal, overload

import numpy as np

from rankseg import _arrays
from rankseg import _validation as v
from rankseg._config import SERIAL_SIZE
from rankseg._policies import AVAILABLE as AVAILABLE  # the CLI's and tests' import
from rankseg._policies import (
    DEVICES,
    EMPTY_CONVENTIONS,
    EMPTY_PRUNING_PROB,
    FLOAT_DTYPES,
    METRICS,
    MIN_SMOOTH,
    OUTPUT_MODES,
    POLICIES,
    SOLVER_PARAMS,
    SOLVERS,
    label_range,
    void_label,
)
from rankseg._policies import EPS_SOLVERS as _EPS_SOLVERS
from rankseg._records import PredictInfo, PredictPlan
from rankseg.cpu import driver as cpu_driver

__all__ = ["PredictInfo", "PredictPlan", "RankSEG", "predict"]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

#: ``predict`` on a list or tuple: inputs of fewer elements than this that share
#: their trailing shape, dtype and kind are decided together, concatenated along B
#: (each would pay a call's fixed cost, tens of microseconds, for little work) ...
SEQUENCE_SMALL = SERIAL_SIZE
#: ... in groups of at most this many elements (the concatenated copy's size)
SEQUENCE_GROUP = 16 * SERIAL_SIZE


def _sequence_groups(arrays: list[Any], keys: list[Any]) -> list[list[int]]:
    """Split the positions of a sequence's inputs into the calls that decide them.

    Inputs with a key (small host arrays: their trailing shape, dtype and kind) are
    grouped by key, in order, up to :data:`SEQUENCE_GROUP` elements per group;
    every input without a key (None) is a call of its own.  Returns the groups in
    the order of their first input.
    """
    calls: list[list[int]] = []
    open_group: dict[Any, tuple[list[int], int]] = {}
    for i, key in enumerate(keys):
        if key is None:
            calls.append([i])
            continue
        size = int(arrays[i].size)
        group, filled = open_group.get(key, (None, 0))
        if group is None or filled + size > SEQUENCE_GROUP:
            group, filled = [], 0
            calls.append(group)
        group.append(i)
        open_group[key] = (group, filled + size)
    return calls


def _device_view(probs: Any) -> Any:
    """View a CUDA array as a zero-copy numba device array; return any other input unchanged.

    Raises ImportError or RuntimeError (:func:`rankseg.cuda.load`) when numba-cuda, or a
    CUDA driver and GPU, is missing.  Checked before the other checks of the input:
    CuPy arrays and torch CUDA tensors also define ``__array__`` (raising).
    """
    if not v.is_cuda_array(probs):
        return probs
    from rankseg.cuda import as_device_array  # lazy: the CPU path never imports CUDA

    return as_device_array(probs)


def _ours(w: warnings.WarningMessage) -> bool:
    """Whether a caught warning is rankseg's: its class, or the code that warned, is ours."""
    return w.category.__module__.startswith("rankseg") or w.filename.startswith(_PACKAGE_DIR)


def _in_item(i: int, func: Any, item: Any, *args: Any) -> Any:
    """``func(item, *args)`` for ``probs[i]`` of a sequence; its errors name ``probs[i]``.

    A TypeError or ValueError is raised again, of its own type, with the message
    prefixed by ``probs[i]: `` (the original as its cause); a
    :class:`~rankseg.BadValuesError` names ``probs[i]`` where it names the row.  A
    list or tuple inside the sequence is refused: a sequence holds arrays, not
    nested sequences.
    """
    if isinstance(item, (list, tuple)):
        raise TypeError(
            f"probs[{i}] is a {type(item).__name__}; predict takes an array of shape "
            "(B, C, *spatial) or a list or tuple of such arrays, not nested lists "
            "(convert nested lists with numpy.asarray first)"
        )
    try:
        return func(item, *args)
    except v.BadValuesError as exc:  # its own way of naming where the values are
        where = f"probs[{i}], sample {exc.sample}, class {exc.class_}"
        raise exc.relocated(exc.sample, where) from exc
    except (TypeError, ValueError) as exc:
        try:
            named = type(exc)(f"probs[{i}]: {exc}")
        except Exception:  # noqa: BLE001 - an exception type of another signature
            raise exc from None
        raise named from exc


class RankSEG:
    """RankSEG decision rule: masks maximizing the expected Dice or IoU per image.

    Parameters
    ----------
    metric : {'dice', 'iou', 'acc'}
        The metric to optimize (case-insensitive; ``'accuracy'`` is ``'acc'``).
        ``'acc'`` gives the usual argmax (multiclass) or ``p > 0.5`` (multilabel)
        rule.
    smooth : float
        Smoothing ``γ >= 0`` of the metric; ``γ > 0`` credits empty-vs-empty.
    output_mode : {'multiclass', 'multilabel'}
        ``'multiclass'``: one integer label map ``(B, *spatial)``;
        ``'multilabel'``: boolean masks ``(B, C, *spatial)`` that may overlap.
    solver : str or None
        Dice: ``'rma'`` (default), ``'exact'``, ``'ba'``, ``'trna'``, ``'ba+trna'``;
        IoU: ``'rma'`` (default), ``'exact'``; accuracy: ``'argmax'`` / ``'tr'``
        (defaults in multiclass / multilabel mode).  See docs/solvers.rst.
    pruning_prob : float or None
        A (sample, class) whose largest probability is ``<= pruning_prob`` gets an
        empty mask without solving.  None (default): the convention's default, 0.5
        for ``empty='zero'`` (confident models; lower it, e.g. to 0, for soft models
        whose probabilities stay below 0.5), 0 for ``empty='ignore'``; with
        ``empty='one'`` the presence rule decides instead (see ``presence``).
    empty : {'zero', 'one', 'ignore'}
        How the user's benchmark scores an (image, class) whose truth is empty
        (SPEC §8, docs/calibration.rst): ``'zero'`` (0/0 := 0, the papers' and
        today's default), ``'one'`` (an empty mask on an empty truth scores 1:
        MONAI's ``DiceMetric(ignore_empty=False)``), ``'ignore'`` (such pairs are
        left out of the mean: MONAI's ``ignore_empty=True``).  Dice/IoU only, with
        ``smooth=0``.
    presence : None, 'argmax' or PresenceModel
        How to decide whether a class gets a mask at all.  None: by
        ``pruning_prob``, or with ``empty='one'`` by the ``'argmax'`` rule.
        ``'argmax'``: a class gets a mask iff it wins the argmax over classes at
        some pixel (multiclass) or has a pixel with ``p > 0.5`` (multilabel) -- the
        presence decisions of argmax.  A fitted :class:`rankseg.tuning.PresenceModel`
        (``empty='one'`` only): the empty mask is kept when ``P(absent) >=
        P(present) · score``, the score being the solver's expected metric of the
        class's mask; ``info.score`` is then the expected score under the
        convention (``P(absent)`` for an empty mask).  With ``'argmax'`` a pruned
        row's ``info.score`` stays 0 (``P(absent)`` needs a model).  ``'argmax'`` and
        a model need the CPU backend.
    **solver_params
        ``unassigned_policy`` ({'max_score', 'void'}, multiclass Dice/IoU only),
        ``void_index`` (int outside ``[0, C)``, default 255, only with
        ``unassigned_policy='void'``), ``eps`` (tail mass outside the refined
        normal window, in (0, 1), default 1e-4; only for ``'ba'``, ``'trna'``,
        ``'ba+trna'``), ``safe_screening`` (False, True or ``'auto'``; RMA only:
        accepted for code written for the torch package, no effect -- our RMA
        screens exactly, so the masks are those of the full sort either way).  A
        parameter that does not apply to the chosen solver and output mode raises
        ValueError.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg import RankSEG
    >>> probs = np.array([[[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]]])  # (B=1, C=2, 1, 3)
    >>> RankSEG(metric="dice").predict(probs)
    array([[[0, 0, 1]]])
    """

    def __init__(
        self,
        metric: str = "dice",
        smooth: float = 0.0,
        output_mode: str = "multiclass",
        solver: str | None = None,
        pruning_prob: float | None = None,
        *,
        empty: str = "zero",
        presence: Any = None,
        **solver_params: Any,
    ) -> None:
        if isinstance(metric, str) and metric.strip().lower() == "accuracy":
            metric = "acc"  # the torch package's other name for it
        self.metric = v.check_name(metric, "metric", METRICS)
        self.empty = v.check_name(empty, "empty", EMPTY_CONVENTIONS)
        self.output_mode = v.check_name(output_mode, "output_mode", OUTPUT_MODES)
        self.smooth = v.check_real(smooth, "smooth", lo=0.0, hi=np.inf, hi_open=True)
        if 0.0 < self.smooth < MIN_SMOOTH:
            raise ValueError(
                f"smooth must be 0 or at least {MIN_SMOOTH:g}; got {smooth!r} (the exact "
                "solver integrates the empty mask's score up to ~40/smooth, beyond float64 "
                f"for smaller values; smooth={MIN_SMOOTH:g} gives the same empty-vs-empty "
                "credit)"
            )
        self._pruning_given = pruning_prob is not None
        self.presence = self._check_presence(presence)
        self.pruning_prob = (
            EMPTY_PRUNING_PROB.get(self.empty, 0.5)
            if pruning_prob is None
            else v.check_real(pruning_prob, "pruning_prob", lo=0.0, hi=1.0)
        )
        self.solver = self._check_solver(solver)
        screening = solver_params.pop("safe_screening", None)
        params = self._check_solver_params(solver_params)
        self.safe_screening = self._check_safe_screening(screening)
        self.unassigned_policy: str = params["unassigned_policy"]
        self.void_index: int = params["void_index"]
        self.eps: float = params["eps"]
        self._given = dict(solver_params)
        if screening is not None:
            self._given["safe_screening"] = self.safe_screening

    # -- parameter checks ---------------------------------------------------
    def _check_presence(self, presence: Any) -> Any:
        """Check ``empty``/``presence`` against the other parameters; the presence rule."""
        if self.empty != "zero" or presence is not None:
            if self.metric == "acc":
                raise ValueError(
                    "empty and presence apply to metric 'dice' or 'iou'; accuracy solvers "
                    f"decide every pixel alone (got metric='acc', empty={self.empty!r})"
                )
            if self.smooth != 0.0:
                raise ValueError(
                    "smooth > 0 is a form of empty-vs-empty credit; with empty="
                    f"{self.empty!r} or a presence rule the convention states it: use "
                    f"smooth=0 (got smooth={self.smooth!r})"
                )
        if presence is None:
            return "argmax" if self.empty == "one" and not self._pruning_given else None
        if self._pruning_given:
            raise ValueError(
                "give either pruning_prob or presence, not both: each decides whether a "
                f"class gets a mask (got pruning_prob and presence={presence!r})"
            )
        if isinstance(presence, str):
            return v.check_name(presence, "presence", ("argmax",))
        if not callable(getattr(presence, "predict_proba", None)):
            raise TypeError(
                "presence must be None, 'argmax' or a fitted rankseg.tuning.PresenceModel; "
                f"got {type(presence).__name__}"
            )
        if self.empty != "one":
            raise ValueError(
                "a presence model applies to empty='one' only: under 'zero' and 'ignore' "
                "an empty mask never scores more than the best mask of its class; use "
                f"presence='argmax' or pruning_prob (got empty={self.empty!r})"
            )
        return presence

    def _check_solver(self, solver: str | None) -> str:
        metric = self.metric
        if metric == "acc":
            if self.smooth != 0.0:
                raise ValueError(
                    f"smooth does not apply to metric 'acc'; got smooth={self.smooth!r}"
                )
            if self.pruning_prob != 0.5:
                raise ValueError(
                    "pruning_prob does not apply to metric 'acc'; "
                    f"got pruning_prob={self.pruning_prob!r}"
                )
        if solver is None:
            if metric == "acc":
                return "argmax" if self.output_mode == "multiclass" else "tr"
            return "rma"
        all_names = sorted({s for names in SOLVERS.values() for s in names})
        name = v.check_name(solver, "solver", all_names)
        if name not in SOLVERS[metric]:
            raise ValueError(
                f"solver {name!r} is not supported for metric {metric!r}; "
                f"choose one of {', '.join(repr(s) for s in SOLVERS[metric])}"
            )
        if metric == "acc":
            wanted = "multiclass" if name == "argmax" else "multilabel"
            if self.output_mode != wanted:
                raise ValueError(
                    f"solver {name!r} gives {wanted} output; got output_mode={self.output_mode!r} "
                    f"(use solver={'tr' if name == 'argmax' else 'argmax'!r} for "
                    f"{self.output_mode} accuracy)"
                )
        return name

    def _check_safe_screening(self, value: Any) -> bool | str:
        """Check the torch package's ``safe_screening`` (False, True, 'auto'): no effect.

        Our RMA always screens, exactly: the pixels it decides without sorting are
        the ones every optimal cut decides the same way (SPEC §2), so the masks are
        those of the full sort, whatever this says.
        """
        if value is None:
            return False
        if isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, str) and value.strip().lower() == "auto":
            value = "auto"
        else:  # TypeError, as the torch package raises
            raise TypeError(
                f"safe_screening must be a bool or 'auto'; got {type(value).__name__} {value!r}"
            )
        if self.solver != "rma":
            raise ValueError(
                f"safe_screening applies to solver 'rma' only; got solver={self.solver!r}"
            )
        return value

    def _check_solver_params(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(SOLVER_PARAMS))
        if unknown:
            raise TypeError(
                f"unexpected keyword argument(s) {', '.join(repr(k) for k in unknown)}; "
                f"solver parameters are {', '.join(repr(k) for k in SOLVER_PARAMS)}, "
                "'safe_screening'"
            )
        out: dict[str, Any] = {"unassigned_policy": "max_score", "void_index": 255, "eps": 1e-4}
        resolves = self.metric != "acc" and self.output_mode == "multiclass"
        if "eps" in params:
            if self.solver not in _EPS_SOLVERS:
                raise ValueError(
                    f"eps does not apply to solver {self.solver!r}; it is a parameter of the "
                    f"refined-normal solvers {', '.join(repr(s) for s in _EPS_SOLVERS)}"
                )
            out["eps"] = v.check_real(
                params["eps"], "eps", lo=0.0, hi=1.0, lo_open=True, hi_open=True
            )
        if "unassigned_policy" in params:
            if not resolves:
                raise ValueError(
                    "unassigned_policy applies only to metric 'dice' or 'iou' with "
                    f"output_mode='multiclass'; got metric={self.metric!r}, "
                    f"output_mode={self.output_mode!r}"
                )
            out["unassigned_policy"] = v.check_name(
                params["unassigned_policy"], "unassigned_policy", POLICIES
            )
        if "void_index" in params:
            if not resolves or out["unassigned_policy"] != "void":
                raise ValueError(
                    "void_index applies only with unassigned_policy='void' (multiclass Dice/IoU); "
                    f"got unassigned_policy={out['unassigned_policy']!r}"
                )
            out["void_index"] = v.check_int(params["void_index"], "void_index")
            if not -(2**63) <= out["void_index"] < 2**63:
                raise ValueError(
                    "void_index must fit in a 64-bit signed integer (the kernels' label type); "
                    f"got {out['void_index']}"
                )
        return out

    def __repr__(self) -> str:
        parts = [
            f"metric={self.metric!r}",
            f"smooth={self.smooth!r}",
            f"output_mode={self.output_mode!r}",
            f"solver={self.solver!r}",
            f"pruning_prob={self.pruning_prob!r}",
        ]
        if self.empty != "zero":
            parts.append(f"empty={self.empty!r}")
        if self.presence is not None and not (self.empty == "one" and self.presence == "argmax"):
            parts.append(f"presence={self.presence!r}")
        parts += [f"{k}={val!r}" for k, val in sorted(self._given.items())]
        return f"RankSEG({', '.join(parts)})"

    # -- prediction -----------------------------------------------------------
    @overload
    def predict(
        self,
        probs: np.ndarray,
        *,
        return_info: Literal[False] = ...,
        dtype: Any = ...,
        out: np.ndarray | None = ...,
        device: str | None = ...,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        probs: np.ndarray,
        *,
        return_info: Literal[True],
        dtype: Any = ...,
        out: np.ndarray | None = ...,
        device: str | None = ...,
    ) -> tuple[np.ndarray, PredictInfo]: ...

    @overload
    def predict(
        self,
        probs: Any,
        *,
        return_info: Literal[True],
        dtype: Any = ...,
        out: np.ndarray | None = ...,
        device: str | None = ...,
    ) -> tuple[Any, PredictInfo]: ...

    @overload
    def predict(
        self,
        probs: Any,
        *,
        return_info: bool = ...,
        dtype: Any = ...,
        out: np.ndarray | None = ...,
        device: str | None = ...,
    ) -> Any: ...

    def predict(
        self,
        probs: Any,
        *,
        return_info: bool = False,
        dtype: Any = None,
        out: np.ndarray | None = None,
        device: str | None = None,
    ) -> Any:
        """Decide masks or labels for a batch of probability maps.

        Parameters
        ----------
        probs : array-like, shape (B, C, *spatial), or a list or tuple of them
            float16/float32/float64 probabilities in [0, 1] (NumPy arrays,
            memmaps, torch tensors, CuPy arrays).  A list or tuple gives a list of
            outputs, each the one its input gives alone, bit for bit; small host
            inputs (under 2**20 elements) of one trailing shape, dtype and kind are
            decided in one call, so a loop's fixed cost per call is paid once
            (their outputs are views of one array).  Errors name the input
            (``probs[i]``); ``out`` cannot be given with a list.  A C-contiguous input is used in
            place; another layout is copied once in its own dtype to view it as
            ``(B, C, prod(spatial))``.  It is never modified.  CUDA arrays
            (``__cuda_array_interface__``: CuPy, torch CUDA tensors, numba device
            arrays; C-contiguous) are read in place on the GPU (docs/gpu.rst).
            Torch tensors are detached (``requires_grad`` is fine, autograd is
            never touched); ``bfloat16`` is decided in float32 (one converted
            copy); tensors on devices other than the CPU and CUDA raise
            ValueError (docs/coming_from_torch.rst).
        return_info : bool
            Also return a :class:`PredictInfo` (Dice/IoU only; NumPy arrays).
        dtype : integer dtype, optional
            Label map dtype (multiclass only); default int64.  A torch dtype
            (``torch.int32``) works too.
        out : ndarray or CPU torch tensor, optional
            Preallocated C-contiguous output (memmaps work) of the output's shape
            and dtype; ``out`` itself is returned filled, whatever the input's
            kind.  Host output only (for CUDA input leave it unset).
        device : {'cpu', 'cuda'} or None
            Where to compute; None: where ``probs`` lives.  The output is of the
            input's kind and on its device (``device='cuda'`` copies host input
            to the GPU and the result back).  Every solver runs on CUDA;
            ``'exact'``, ``'ba'``, ``'trna'`` and ``'ba+trna'`` make their passes
            over the input on the GPU and solve each row's candidates on the host
            (docs/gpu.rst).

        Returns
        -------
        array of the input's kind, or a tuple with a PredictInfo
            Labels ``(B, *spatial)`` (multiclass, int64 unless ``dtype``) or
            boolean masks ``(B, C, *spatial)`` (multilabel): a NumPy array for
            NumPy (and other host array-like) input, a torch tensor on the
            input's device for a tensor (zero-copy: ``torch.from_numpy`` on the
            CPU, the backend's own tensor on CUDA), a CuPy array for CuPy input,
            a numba device array for a numba device array.  With the info
            (NumPy arrays) when requested.  For a list or tuple: a list of those,
            and with the info a tuple ``(outputs, infos)`` of two lists.

        Examples
        --------
        >>> import numpy as np
        >>> from rankseg import RankSEG
        >>> images = [np.full((1, 2, 4, 4), 0.5), np.full((1, 2, 3, 5), 0.5)]
        >>> [labels.shape for labels in RankSEG().predict(images)]
        [(1, 4, 4), (1, 3, 5)]
        """
        if isinstance(probs, (list, tuple)):
            return self._predict_sequence(probs, return_info, dtype, out, device)
        arr, kind = _arrays.prepare(probs)
        return self._predict_prepared(probs, arr, kind, return_info, dtype, out, device)

    __call__ = predict

    def _predict_prepared(
        self,
        probs: Any,
        arr: Any,
        kind: Any,
        return_info: bool,
        dtype: Any,
        out: Any,
        device: str | None,
    ) -> Any:
        """:meth:`predict` of one input, ``(arr, kind)`` from :func:`rankseg._arrays.prepare`."""
        host_out = _arrays.prepare_out(out)
        res = self._predict_native(
            arr, return_info, _arrays.as_numpy_dtype(dtype), host_out, device, probs
        )
        if out is not None:  # out itself, whatever its kind (NumPy array or CPU tensor)
            return (out, res[1]) if return_info else out
        if return_info:
            return _arrays.restore(res[0], kind), res[1]
        return _arrays.restore(res, kind)

    def _predict_sequence(
        self,
        items: list[Any] | tuple[Any, ...],
        return_info: bool,
        dtype: Any,
        out: Any,
        device: str | None,
    ) -> Any:
        """:meth:`predict` on a list or tuple of inputs: a list of what each gives.

        Small host inputs (:data:`SEQUENCE_SMALL`) of one trailing shape, dtype
        and kind are concatenated along B and decided in one call
        (:func:`_sequence_groups`), and their outputs are views of that call's
        output: rows are decided independently, so each output is the one
        ``predict(item)`` gives, bit for bit.  Any other input is its own call.  An
        error names the input (``probs[i]: ...``); when a group's call fails, its
        inputs are decided one by one, so the error is the failing input's own.
        """
        if out is not None:
            raise ValueError(
                "out= takes one output array; with a list or tuple of inputs leave it "
                "unset (each input gets a new output)"
            )
        v.check_return_info(return_info, self.metric)
        if device is not None:
            device = v.check_name(device, "device", DEVICES)
        arrays: list[Any] = []
        keys: list[Any] = []
        for i, item in enumerate(items):
            arr, kind = _in_item(i, _arrays.prepare, item)
            arrays.append((arr, kind))
            small = (
                type(arr) is np.ndarray
                and device != "cuda"
                and arr.ndim >= 3
                and 0 < arr.size < SEQUENCE_SMALL
                and arr.dtype in FLOAT_DTYPES
            )
            keys.append((arr.shape[1:], arr.dtype, kind.lib, kind.device) if small else None)
        label_dtype = _arrays.as_numpy_dtype(dtype)
        outs: list[Any] = [None] * len(items)
        infos: list[Any] = [None] * len(items)

        def one(i: int) -> None:  # prepared above: a copy (another layout) is made once
            arr, kind = arrays[i]
            args = (arr, kind, return_info, dtype, None, device)
            res = _in_item(i, self._predict_prepared, items[i], *args)
            outs[i], infos[i] = res if return_info else (res, None)

        for group in _sequence_groups([a for a, _ in arrays], keys):
            if len(group) == 1:
                one(group[0])
                continue
            batch = np.concatenate([arrays[i][0] for i in group])
            failed = False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = self._predict_native(batch, return_info, label_dtype, None, device, batch)
                except (TypeError, ValueError):
                    failed = True  # each input's own error, with its position, below
            if failed or caught:
                # A warning (or an error) about the concatenated batch would name its
                # samples by their place in it: decide the group's inputs one by one,
                # so each says its own.  Warnings raised meanwhile by other threads'
                # code (catch_warnings is process-wide) are passed on.
                for w in caught:
                    if not _ours(w):
                        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                for i in group:
                    one(i)
                continue
            labels, info = res if return_info else (res, None)
            b0 = 0
            for i in group:
                b1 = b0 + arrays[i][0].shape[0]
                outs[i] = _arrays.restore(labels[b0:b1], arrays[i][1])
                if info is not None:
                    infos[i] = PredictInfo(
                        tau=info.tau[b0:b1],
                        threshold=info.threshold[b0:b1],
                        score=info.score[b0:b1],
                        pruned=info.pruned[b0:b1],
                    )
                b0 = b1
        return (outs, infos) if return_info else outs

    def plan(
        self,
        shape: tuple[int, ...],
        dtype: Any,
        *,
        return_info: bool = False,
        out_dtype: Any = None,
    ) -> PredictPlan:
        """Validate a call of :meth:`predict` on an input of ``shape`` and ``dtype``.

        No data is read or written: adapters (xarray, dask) learn
        the output's shape and dtype, and get the errors :meth:`predict` would raise
        for this shape and dtype, before any data is computed.

        Parameters
        ----------
        shape : tuple of int
            The input's shape ``(B, C, *spatial)`` (B may be 0).
        dtype : dtype-like
            The input's dtype: float16, float32 or float64.
        return_info : bool
            As for :meth:`predict`.
        out_dtype : integer dtype, optional
            The label dtype asked for (:meth:`predict`'s ``dtype``; a torch dtype
            works too); multiclass only.

        Returns
        -------
        PredictPlan
            The output's shape and dtype, and how the call runs.

        Raises
        ------
        TypeError
            If ``return_info`` is not a bool, ``dtype`` is not a float dtype, or
            ``out_dtype`` is not an integer dtype (multiclass) or not a dtype.
        ValueError
            If the shape is not ``(B, C, *spatial)`` with C >= 1 and non-empty
            spatial axes, a label map is asked of one class, ``void_index`` lies
            in ``[0, C)``, ``out_dtype`` cannot hold every label or is not bool
            (multilabel), or ``return_info=True`` with ``metric='acc'``.

        Examples
        --------
        >>> from rankseg import RankSEG
        >>> plan = RankSEG().plan((2, 3, 64, 64), "float32", out_dtype="uint8")
        >>> plan.out_shape, plan.out_dtype
        ((2, 64, 64), dtype('uint8'))
        """
        v.check_return_info(return_info, self.metric)
        out_dtype = _arrays.as_numpy_dtype(out_dtype)
        try:
            in_dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"dtype must be the input's dtype (float16, float32 or float64); got {dtype!r}"
            ) from None
        v.check_probs_dtype(in_dtype)
        shape = tuple(int(n) for n in shape)
        v.check_probs_shape(shape)
        nb, nc = shape[:2]
        spatial = shape[2:]
        multiclass = self.output_mode == "multiclass"
        void = void_label(self) is not None
        v.check_classes(nc, multiclass, void_label(self))
        if multiclass:
            lo, hi = label_range(nc, self)
            label = v.label_dtype(out_dtype, hi, lo)
            out = (label, (nb, *spatial))
        else:
            v.check_mask_dtype(out_dtype)
            out = (np.dtype(np.bool_), (nb, nc, *spatial))
        return PredictPlan(
            shape=shape,
            dtype=in_dtype.newbyteorder("="),
            out_shape=out[1],
            out_dtype=out[0],
            multiclass=multiclass,
            void=void,
            return_info=bool(return_info),
        )

    def _predict_native(
        self,
        probs: Any,
        return_info: bool,
        dtype: Any,
        out: np.ndarray | None,
        device: str | None,
        original: Any,
    ) -> Any:
        """:meth:`predict` on NumPy or numba device arrays (``original``: the caller's input).

        Validate, plan (:meth:`plan`), then run the CPU or the GPU driver (the same
        call for both: :func:`rankseg.cpu.driver.predict`,
        :func:`rankseg.cuda.driver.predict`).
        """
        v.check_return_info(return_info, self.metric)
        if device is not None:
            device = v.check_name(device, "device", DEVICES)
        arr = v.as_probs(_device_view(probs))
        on_cuda = not isinstance(arr, np.ndarray)
        device = device or ("cuda" if on_cuda else "cpu")
        if out is not None:
            v.check_out_kind(out, on_cuda)
        if on_cuda and device == "cpu":
            from rankseg.cuda import backend

            gpu = backend()
            res = self._predict_native(gpu.to_host(arr), return_info, dtype, None, "cpu", original)
            if return_info:
                return gpu.to_device(res[0]), res[1]
            return gpu.to_device(res)
        if dtype is None and out is not None and self.output_mode == "multiclass":
            dtype = v.out_label_dtype(out)
        plan = self.plan(arr.shape, arr.dtype, return_info=return_info, out_dtype=dtype)
        if device == "cuda":
            self.check_pruning_rule("the CUDA backend")
            from rankseg.cuda import backend

            driver: Any = backend()
        else:
            driver = cpu_driver
        if out is not None:
            out = v.check_out(out, plan.out_shape, plan.out_dtype, arr, original)
        return driver.predict(self, arr, (plan.out_shape, plan.out_dtype, out), return_info)

    def check_pruning_rule(self, where: str) -> None:
        """Raise unless the presence decision is ``pruning_prob`` (what every backend runs).

        Parameters
        ----------
        where : str
            The backend or adapter, for the message (e.g. ``"the CUDA backend"``).

        Raises
        ------
        ValueError
            If ``presence`` is ``'argmax'`` or a model (``empty='one'`` without
            ``pruning_prob`` included): those run on the in-memory CPU path only.
        """
        if self.presence is not None:
            raise ValueError(
                f"presence={self.presence!r} (the default of empty='one') runs on the "
                f"in-memory CPU path only, not on {where}; give pruning_prob instead, or "
                "use rankseg.predict on the host"
            )


@overload
def predict(
    probs: np.ndarray,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    empty: str = ...,
    presence: Any = ...,
    return_info: Literal[False] = ...,
    dtype: Any = ...,
    out: np.ndarray | None = ...,
    device: str | None = ...,
    **solver_params: Any,
) -> np.ndarray: ...


@overload
def predict(
    probs: np.ndarray,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    empty: str = ...,
    presence: Any = ...,
    return_info: Literal[True],
    dtype: Any = ...,
    out: np.ndarray | None = ...,
    device: str | None = ...,
    **solver_params: Any,
) -> tuple[np.ndarray, PredictInfo]: ...


@overload
def predict(
    probs: Any,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    empty: str = ...,
    presence: Any = ...,
    return_info: Literal[True],
    dtype: Any = ...,
    out: np.ndarray | None = ...,
    device: str | None = ...,
    **solver_params: Any,
) -> tuple[Any, PredictInfo]: ...


@overload
def predict(
    probs: Any,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    empty: str = ...,
    presence: Any = ...,
    return_info: bool = ...,
    dtype: Any = ...,
    out: np.ndarray | None = ...,
    device: str | None = ...,
    **solver_params: Any,
) -> Any: ...


def predict(
    probs: Any,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    solver: str | None = None,
    pruning_prob: float | None = None,
    *,
    empty: str = "zero",
    presence: Any = None,
    return_info: bool = False,
    dtype: Any = None,
    out: np.ndarray | None = None,
    device: str | None = None,
    **solver_params: Any,
) -> Any:
    """One-call form of ``RankSEG(...).predict(probs, ...)``.

    Parameters
    ----------
    probs : array-like, shape (B, C, *spatial), or a list or tuple of them
        float16/float32/float64 probabilities in [0, 1]; a list or tuple gives a
        list of outputs (see :meth:`RankSEG.predict`).
    metric, smooth, output_mode, solver, pruning_prob, empty, presence, **solver_params
        As for :class:`RankSEG`.
    return_info : bool
        Also return a :class:`PredictInfo`.
    dtype : integer dtype, optional
        Label map dtype (multiclass only); default int64.
    out : ndarray, optional
        Preallocated output.
    device : {'cpu', 'cuda'} or None
        Where to compute (None: where ``probs`` lives); see :meth:`RankSEG.predict`.

    Returns
    -------
    ndarray or numba device array, or a tuple with a PredictInfo
        Labels ``(B, *spatial)`` or masks ``(B, C, *spatial)``, with the info when
        requested.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg import predict
    >>> probs = np.array([[[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]]])
    >>> masks, info = predict(probs, output_mode="multilabel", return_info=True)
    >>> masks[0, :, 0]
    array([[ True,  True, False],
           [False,  True,  True]])
    >>> info.tau
    array([[2, 2]])
    """
    model = RankSEG(
        metric,
        smooth,
        output_mode,
        solver,
        pruning_prob,
        empty=empty,
        presence=presence,
        **solver_params,
    )
    return model.predict(probs, return_info=return_info, dtype=dtype, out=out, device=device)
