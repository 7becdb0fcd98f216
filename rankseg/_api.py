"""The NumPy front end: parameters, validation, dispatch and output allocation."""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

from rankseg import _arrays
from rankseg import _validation as v
from rankseg._config import CHUNK
from rankseg._presence import presence_features
from rankseg._records import AVAILABLE as AVAILABLE  # the CLI's and tests' import
from rankseg._records import (
    DEVICES,
    EMPTY_CONVENTIONS,
    EMPTY_PRUNING_PROB,
    METRICS,
    MIN_SMOOTH,
    OUTPUT_MODES,
    POLICIES,
    SOLVER_PARAMS,
    SOLVERS,
    PredictInfo,
    bits_view,
    kernel_view,
    label_range,
    metric_code,
    void_label,
)
from rankseg._records import EPS_SOLVERS as _EPS_SOLVERS
from rankseg._records import SOLVER_CODE as _SOLVER_CODE
from rankseg._threads import call_threads, num_threads
from rankseg.kernels.assign import argmax_labels, assign_labels
from rankseg.kernels.masks import write_masks, write_threshold_masks
from rankseg.kernels.search import empty_scores, solver_cuts
from rankseg.kernels.select import STAT_MAX, STAT_MU, rma_cuts, row_stats

__all__ = ["PredictInfo", "RankSEG", "predict"]


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


def _is_bool_dtype(dtype: Any) -> bool:
    try:
        return np.dtype(dtype) == np.bool_
    except TypeError:  # not a dtype at all
        raise TypeError(
            "dtype applies to multiclass label maps; multilabel masks are bool, got "
            f"dtype={dtype!r}, which is not a dtype"
        ) from None


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
        probs : array-like, shape (B, C, *spatial)
            float16/float32/float64 probabilities in [0, 1] (NumPy arrays,
            memmaps, torch tensors, CuPy arrays).  A C-contiguous input is used in
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
            (NumPy arrays) when requested.
        """
        arr, kind = _arrays.prepare(probs)
        host_out = _arrays.prepare_out(out)
        res = self._predict_native(
            arr, return_info, _arrays.as_numpy_dtype(dtype), host_out, device, probs
        )
        if out is not None:  # out itself, whatever its kind (NumPy array or CPU tensor)
            return (out, res[1]) if return_info else out
        if return_info:
            return _arrays.restore(res[0], kind), res[1]
        return _arrays.restore(res, kind)

    __call__ = predict

    def _predict_native(
        self,
        probs: Any,
        return_info: bool,
        dtype: Any,
        out: np.ndarray | None,
        device: str | None,
        original: Any,
    ) -> Any:
        """:meth:`predict` on NumPy or numba device arrays (``original``: the caller's input)."""
        if not isinstance(return_info, (bool, np.bool_)):
            raise TypeError(f"return_info must be a bool; got {type(return_info).__name__}")
        if return_info and self.metric == "acc":
            raise ValueError(
                "return_info=True needs metric 'dice' or 'iou'; accuracy solvers have no "
                "per-class objective to report"
            )
        if device is not None:
            device = v.check_name(device, "device", DEVICES)
        arr = v.as_probs(_device_view(probs))
        on_cuda = not isinstance(arr, np.ndarray)
        device = device or ("cuda" if on_cuda else "cpu")
        if on_cuda and out is not None:
            raise TypeError(
                "out applies to host output; a CUDA input gives a new numba device array"
            )
        if on_cuda and device == "cpu":
            from rankseg.cuda import backend

            driver = backend()
            res = self._predict_native(
                driver.to_host(arr), return_info, dtype, None, "cpu", original
            )
            if return_info:
                return driver.to_device(res[0]), res[1]
            return driver.to_device(res)
        nb, nc = arr.shape[:2]
        spatial = arr.shape[2:]
        multiclass = self.output_mode == "multiclass"
        if multiclass and nc == 1:
            raise ValueError(
                "multiclass output needs at least 2 classes; got C = 1. For a single "
                "foreground class use output_mode='multilabel' (boolean mask)"
            )
        void = void_label(self) is not None
        if void and 0 <= self.void_index < nc:
            raise ValueError(
                f"void_index must lie outside [0, {nc}) so it cannot be confused with a class; "
                f"got {self.void_index}"
            )
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array (or memmap); got {type(out).__name__}")
        if multiclass:
            lo, hi = label_range(nc, self)
            if dtype is None and out is not None and out.dtype.kind not in "iu":
                raise TypeError(
                    f"out has dtype {out.dtype}; expected an integer dtype for the label map "
                    "(e.g. int64)"
                )
            if dtype is None and out is not None and not out.dtype.isnative:
                raise ValueError(
                    f"out has dtype {out.dtype.str}; expected an integer dtype in this "
                    f"machine's byte order (e.g. {out.dtype.newbyteorder('=')})"
                )
            out_dtype = v.label_dtype(
                dtype if dtype is not None or out is None else out.dtype, hi, lo
            )
            out_shape = (nb, *spatial)
        else:
            if dtype is not None and not _is_bool_dtype(dtype):
                raise ValueError(
                    "dtype applies to multiclass label maps; multilabel masks are bool, "
                    f"got dtype={dtype!r}"
                )
            out_dtype = np.dtype(np.bool_)
            out_shape = (nb, nc, *spatial)
        if device == "cuda":
            self.check_pruning_rule("the CUDA backend")
            from rankseg.cuda import backend

            driver = backend()
            host_out = (
                None if out is None else v.check_out(out, out_shape, out_dtype, arr, original)
            )
            return driver.predict(self, arr, (out_shape, out_dtype, host_out), return_info)
        if out is None:
            result = np.empty(out_shape, dtype=out_dtype)
        else:
            result = v.check_out(out, out_shape, out_dtype, arr, original)
        if nb == 0:
            return (result, self._empty_info(nc)) if return_info else result
        # one Numba thread for small inputs, and no more threads than there are idle
        # cores (call_threads; docs/performance.rst)
        with num_threads(call_threads(arr.size)):
            return self._predict_host(arr, result, void, return_info)

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

    def _predict_host(
        self, arr: np.ndarray, result: np.ndarray, void: bool, return_info: bool
    ) -> Any:
        """Run the kernels on a validated host input of shape ``(B, C, *spatial)``."""
        nb, nc = arr.shape[:2]
        multiclass = self.output_mode == "multiclass"
        d = int(np.prod(arr.shape[2:]))
        x = arr.reshape(nb * nc, d)
        stats = _row_stats(arr, x)
        if multiclass:  # a layout check from the row sums just computed (docs/conventions)
            v.check_class_sums(stats[:, STAT_MU].reshape(nb, nc), d)
        xb, x = bits_view(x), kernel_view(x)
        flat_out = result.reshape(nb, d) if multiclass else result.reshape(nb * nc, d)

        if self.metric == "acc":
            if multiclass:
                argmax_labels(x, nc, flat_out, CHUNK)
            else:
                write_threshold_masks(x, flat_out, CHUNK)
            return result

        metric = metric_code(self.metric)
        gamma = self.smooth
        mu = stats[:, STAT_MU]
        if self.presence is None:
            pruned = stats[:, STAT_MAX] <= self.pruning_prob
        else:
            wins = _wins(x, arr.reshape(nb * nc, d), nc, flat_out, multiclass)
            pruned = wins == 0 if self.presence == "argmax" else np.zeros(nb * nc, dtype=bool)
        rows = np.flatnonzero(~pruned).astype(np.int64)
        t = np.full(nb * nc, np.inf)
        jcut = np.full(nb * nc, -1, dtype=np.int64)
        tau = np.zeros(nb * nc, dtype=np.int64)
        score = np.zeros(nb * nc)
        if gamma > 0:
            score[:] = gamma / (mu + gamma)
        if gamma > 0 and self.solver != "rma" and pruned.any():
            empty = np.flatnonzero(pruned).astype(np.int64)
            params = (_SOLVER_CODE[self.solver], metric, gamma, self.eps)
            score[empty] = empty_scores(x, empty, params)
        if rows.size and self.solver == "rma":
            tau_a, t_a, jcut_a, score_a = rma_cuts(x, xb, stats, rows, metric, gamma, CHUNK)
        elif rows.size:
            params = (_SOLVER_CODE[self.solver], metric, gamma, self.eps)
            tau_a, t_a, jcut_a, score_a = solver_cuts(x, xb, stats, rows, params, CHUNK)
        if rows.size:
            tau[rows], t[rows], jcut[rows], score[rows] = tau_a, t_a, jcut_a, score_a
        if self.presence is not None and not isinstance(self.presence, str):
            # the presence model: keep the empty mask when P(absent) >= P(present) * score
            rows_f = arr.reshape(nb * nc, d)
            feats = presence_features(rows_f, stats[:, STAT_MAX], mu, wins)
            present = self.presence.predict_proba(feats)
            pruned = (1.0 - present) >= present * score
            t[pruned], jcut[pruned], tau[pruned] = np.inf, -1, 0
            score = np.where(pruned, 1.0 - present, present * score)
        if multiclass:
            policy = (metric, gamma, void, np.int64(self.void_index))
            assign_labels(x, nc, (t, jcut, ~pruned), mu, policy, flat_out, CHUNK)
        else:
            write_masks(x, t, jcut, flat_out, CHUNK)
        if not return_info:
            return result
        info = PredictInfo(
            tau=tau.reshape(nb, nc),
            threshold=np.where(tau > 0, t, np.nan).reshape(nb, nc),
            score=score.reshape(nb, nc),
            pruned=pruned.reshape(nb, nc),
        )
        return result, info

    @staticmethod
    def _empty_info(nc: int) -> PredictInfo:
        return PredictInfo(
            tau=np.zeros((0, nc), dtype=np.int64),
            threshold=np.zeros((0, nc)),
            score=np.zeros((0, nc)),
            pruned=np.zeros((0, nc), dtype=bool),
        )


def _wins(
    x: np.ndarray, rows: np.ndarray, nc: int, flat_out: np.ndarray, multiclass: bool
) -> np.ndarray:
    """Pixels each (sample, class) row wins: argmax over classes, or ``p > 0.5``.

    ``x`` is the kernels' view of the rows (float16 as bits), ``rows`` their float view.
    Multiclass: the argmax labels are written into ``flat_out`` (the label map, later
    overwritten by the decision) and counted per sample.
    """
    if multiclass:
        argmax_labels(x, nc, flat_out, CHUNK)
        return np.stack([np.bincount(row, minlength=nc)[:nc] for row in flat_out]).reshape(-1)
    return np.array([np.count_nonzero(row > 0.5) for row in rows], dtype=np.int64)


def _row_stats(arr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row statistics with the maxima filled in; raises on NaN, inf or values outside [0, 1]."""
    bits = bits_view(x)
    stats, maxbits = row_stats(kernel_view(x), bits, CHUNK)
    one = np.array(1.0, dtype=x.dtype).view(bits.dtype)
    stats[:, STAT_MAX] = maxbits.astype(bits.dtype).view(x.dtype)
    for r in np.flatnonzero(maxbits > one):
        # a pattern above 1.0's: NaN, inf, a value outside [0, 1] -- or only -0.0
        row = x[r].astype(np.float64)
        if np.isnan(row).any() or (row < 0).any() or (row > 1).any():
            v.raise_bad_values(arr, int(r))
        stats[r, STAT_MAX] = row.max()
    return stats


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
    probs : array-like, shape (B, C, *spatial)
        float16/float32/float64 probabilities in [0, 1].
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
