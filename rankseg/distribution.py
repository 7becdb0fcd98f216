"""The refined normal approximation of the Poisson binomial (the torch package's module).

:class:`RefinedNormalPB` and :class:`RefinedNormal` have the names, parameters and
methods of ``rankseg.distribution`` in the torch-based package (0.0.8), computed
with NumPy/SciPy in float64.  They take torch tensors as well as NumPy arrays and
Python numbers: when a parameter (or the argument of a method) is a torch tensor,
the results are torch tensors on its device, in the floating dtype torch would
promote the tensors to; otherwise NumPy arrays.

The refined normal approximation (Volkova 1996) of ``Γ = Σ Y_j`` with mean ``loc``,
standard deviation ``scale`` and skewness ``skew``:
``F(k) = clip(Φ(x) + skew (1 − x²) φ(x) / 6, 0, 1)`` with ``x = (k + 0.5 − loc) / scale``
(SPEC §2; the BA and TRNA solvers use it through :mod:`rankseg.kernels.refined_normal`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

from rankseg._arrays import torch_tensor_module
from rankseg.kernels.refined_normal import refined_quantile_hi, refined_quantile_lo

__all__ = ["RefinedNormal", "RefinedNormalPB"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def _g(x: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Evaluate the standardized refined CDF, clipped to [0, 1]."""
    return np.clip(scipy.special.ndtr(x) + skew * (1.0 - x * x) * _phi(x) / 6.0, 0.0, 1.0)


class _Kind:
    """Where results go: NumPy, or torch tensors on a device and in a dtype."""

    def __init__(self, *values: Any) -> None:
        self.torch = None
        self.device = None
        self.dtype = None
        for val in values:
            torch = torch_tensor_module(val)
            if torch is None:
                continue
            self.torch = torch
            self.device = self.device or val.device
            if val.dtype.is_floating_point:
                self.dtype = (
                    val.dtype if self.dtype is None else torch.promote_types(self.dtype, val.dtype)
                )
        if self.torch is not None and self.dtype is None:
            self.dtype = self.torch.get_default_dtype()

    def __call__(self, arr: np.ndarray, dtype: Any = None) -> Any:
        if self.torch is None:
            return arr
        t = self.torch.from_numpy(np.ascontiguousarray(arr))
        return t.to(device=self.device, dtype=dtype or self.dtype)


def _numpy(value: Any, name: str) -> np.ndarray:
    """Return a real parameter as a float64 array (tensors copied to the host)."""
    torch = torch_tensor_module(value)
    if torch is not None:
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must contain real numbers; got a tensor of {value.dtype}")
        return value.detach().to(device="cpu", dtype=torch.float64).numpy()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must contain real numbers; got a bool")
    if isinstance(value, numbers.Real):
        return np.asarray(float(value))
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must contain real numbers; got an array of dtype {arr.dtype}")
    return arr.astype(np.float64)


class RefinedNormalPB:
    """Refined normal approximation of a Poisson binomial distribution.

    ``F(k) = G((k + 0.5 − loc) / scale)`` with ``G(x) = Φ(x) + skew (1 − x²) φ(x) / 6``
    (clipped to [0, 1]); ``pmf(k) = clip(F(k) − F(k − 1), 0, 1)``.

    Parameters
    ----------
    dim : int, array or tensor
        Non-negative integer number of trials: the upper end of the support
        (intervals are clipped to it).
    loc : float, array or tensor
        Mean.
    scale : float, array or tensor
        Standard deviation, > 0.
    skew : float, array or tensor
        Skewness.
    validate_args : bool, optional
        False skips the checks of the parameters (default: check).

    Raises
    ------
    TypeError
        If a parameter is not real (bool or complex values included).
    ValueError
        If ``loc``, ``scale`` or ``skew`` is not finite, ``scale <= 0``, or ``dim``
        is not a non-negative integer.

    Examples
    --------
    >>> from rankseg.distribution import RefinedNormalPB
    >>> rv = RefinedNormalPB(dim=10, loc=4.0, scale=1.5, skew=0.1)
    >>> float(rv.pmf(4.0).round(4))
    0.2611
    >>> rv.interval(1e-4)
    (array(0, dtype=int32), array(10, dtype=int32))
    """

    def __init__(
        self, dim: Any, loc: Any, scale: Any, skew: Any, validate_args: bool | None = None
    ) -> None:
        self._sources = (dim, loc, scale, skew)  # their kind decides the results' kind
        self._kind = _Kind(*self._sources)
        names = ("dim", "loc", "scale", "skew")
        raw = [_numpy(val, name) for val, name in zip((dim, loc, scale, skew), names, strict=True)]
        self._dim, self._loc, self._scale, self._skew = np.broadcast_arrays(*raw)
        self._validate = validate_args is not False
        if self._validate:
            for name, val in zip(names[1:], (self._loc, self._scale, self._skew), strict=True):
                if not np.isfinite(val).all():
                    raise ValueError(f"{name} must contain only finite values")
            if (self._scale <= 0).any():
                raise ValueError("scale must be > 0 (a standard deviation)")
            d = self._dim
            if not np.isfinite(d).all() or (d < 0).any() or (d != np.floor(d)).any():
                raise ValueError("dim must be a non-negative integer (the number of trials)")

    # -- the torch Distribution attributes --------------------------------------
    @property
    def batch_shape(self) -> Any:
        """Shape of the broadcast parameters (a ``torch.Size`` for tensor parameters)."""
        shape = self._loc.shape
        return self._kind.torch.Size(shape) if self._kind.torch is not None else shape

    @property
    def event_shape(self) -> Any:
        """``()``: a scalar distribution."""
        return self._kind.torch.Size(()) if self._kind.torch is not None else ()

    dim = property(lambda self: self._kind(self._dim), doc="Number of trials (broadcast).")
    loc = property(lambda self: self._kind(self._loc), doc="Mean (broadcast).")
    scale = property(lambda self: self._kind(self._scale), doc="Standard deviation (broadcast).")
    skew = property(lambda self: self._kind(self._skew), doc="Skewness (broadcast).")

    @property
    def mean(self) -> Any:
        """The mean, ``loc``."""
        return self.loc

    @property
    def stddev(self) -> Any:
        """The standard deviation, ``scale``."""
        return self.scale

    def expand(self, batch_shape: Any, _instance: Any = None) -> RefinedNormalPB:
        """Return the distribution with its parameters broadcast to ``batch_shape``.

        Parameters
        ----------
        batch_shape : tuple of int
            The new batch shape.

        Returns
        -------
        RefinedNormalPB
            A new distribution (parameters of the same kind as this one's).
        """
        shape = tuple(batch_shape)
        new = object.__new__(RefinedNormalPB)
        new._kind, new._sources = self._kind, self._sources
        new._validate = self._validate
        new._dim, new._loc, new._scale, new._skew = (
            np.broadcast_to(a, shape) for a in (self._dim, self._loc, self._scale, self._skew)
        )
        return new

    def _x(self, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardized ``x = (value + 0.5 − loc) / scale`` and the skewness, broadcast.

        Like the torch package, parameters get trailing axes until they have as many
        dimensions as ``value`` (``value`` of shape ``(B, C, k)`` against parameters
        of shape ``(B, C)``).
        """
        loc, scale, skew = self._loc, self._scale, self._skew
        extra = value.ndim - loc.ndim
        if extra > 0:
            loc, scale, skew = (a.reshape(a.shape + (1,) * extra) for a in (loc, scale, skew))
        return (value + 0.5 - loc) / scale, skew

    def cdf(self, value: Any) -> Any:
        """Refined-normal CDF ``F(value)``.

        Parameters
        ----------
        value : float, array or tensor
            Points (counts; any real works).

        Returns
        -------
        array or tensor
            ``F(value)`` in [0, 1], of the kind of the inputs.
        """
        x, skew = self._x(_numpy(value, "value"))
        return _Kind(value, *self._sources)(_g(x, skew))

    def pdf(self, value: Any) -> Any:
        """Density of the continuous refined normal, ``φ(x)(1 + skew (x³ − 3x)/6) / scale``.

        Parameters
        ----------
        value : float, array or tensor
            Points.

        Returns
        -------
        array or tensor
            The density, clipped below at 0.
        """
        x, skew = self._x(_numpy(value, "value"))
        pdf = _phi(x) * (1.0 + skew * (x**3 - 3.0 * x) / 6.0)
        s = self._scale.reshape(self._scale.shape + (1,) * max(0, x.ndim - self._scale.ndim))
        return _Kind(value, *self._sources)(np.maximum(pdf / s, 0.0))

    def pmf(self, value: Any) -> Any:
        """Probability mass ``clip(F(value) − F(value − 1), 0, 1)``.

        Parameters
        ----------
        value : float, array or tensor
            Counts.

        Returns
        -------
        array or tensor
            The (unnormalized over a window) pmf.
        """
        k = _numpy(value, "value")
        x, skew = self._x(k)
        x1, _ = self._x(k - 1.0)
        return _Kind(value, *self._sources)(np.clip(_g(x, skew) - _g(x1, skew), 0.0, 1.0))

    def icdf(self, p: Any, max_iter: int = 1000, tol: float = 1e-6) -> Any:
        """Quantile: the point where ``cdf`` reaches ``p``, by bracketed bisection.

        Parameters
        ----------
        p : array or tensor
            Levels in (0, 1).
        max_iter : int
            Maximum bisection steps, > 0.
        tol : float
            Stop when every bracket is narrower than this, > 0.

        Returns
        -------
        array or tensor
            The quantiles (shape of ``p`` broadcast with the parameters).

        Raises
        ------
        TypeError
            If ``p`` is not a float array/tensor or ``max_iter`` not an integer.
        ValueError
            If ``p`` is empty, not finite or outside (0, 1), ``max_iter <= 0`` or
            ``tol <= 0``.
        """
        q = _numpy(p, "p")
        if q.size == 0:
            raise ValueError("p must not be empty")
        if not np.isfinite(q).all() or ((q <= 0) | (q >= 1)).any():
            raise ValueError("p must contain finite values in (0, 1)")
        if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, numbers.Integral):
            raise TypeError(f"max_iter must be an int; got {type(max_iter).__name__}")
        if max_iter <= 0:
            raise ValueError(f"max_iter must be > 0; got {max_iter}")
        if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
            raise TypeError(f"tol must be a real number; got {type(tol).__name__}")
        if not math.isfinite(tol) or tol <= 0:
            raise ValueError(f"tol must be finite and > 0; got {tol}")
        extra = max(0, q.ndim - self._loc.ndim)
        loc = self._loc.reshape(self._loc.shape + (1,) * extra)
        scale = self._scale.reshape(self._scale.shape + (1,) * extra)
        lo = np.broadcast_to(loc - 0.5 - 8.0 * scale, np.broadcast_shapes(q.shape, loc.shape))
        hi = loc - 0.5 + 8.0 * scale + np.zeros_like(lo)
        lo = lo.copy()
        cdf = self._cdf_np
        for _ in range(min(32, max_iter)):  # widen until the bracket holds p
            below, above = cdf(lo) > q, cdf(hi) < q
            if not (below.any() or above.any()):
                break
            width = hi - lo
            lo, hi = np.where(below, lo - width, lo), np.where(above, hi + width, hi)
        for _ in range(max_iter):
            mid = 0.5 * (lo + hi)
            right = cdf(mid) < q
            new_lo, new_hi = np.where(right, mid, lo), np.where(right, hi, mid)
            moved = (new_lo != lo) | (new_hi != hi)
            lo, hi = new_lo, new_hi
            if np.max(np.abs(hi - lo)) < tol or not moved.any():
                break
        return _Kind(p, *self._sources)(0.5 * (lo + hi))

    def _cdf_np(self, value: np.ndarray) -> np.ndarray:
        x, skew = self._x(value)
        return _g(x, skew)

    def interval(self, p: Any) -> tuple[Any, Any]:
        """Inclusive integer window ``[lq, uq]`` holding mass ``1 − p``.

        ``lq = max(floor(scale q_lo + loc) − 1, 0)``, ``uq = max(ceil(scale q_hi + loc), 0)``,
        both at most ``dim``, where ``q_lo`` and ``q_hi`` are the ``p/2`` and ``1 − p/2``
        quantiles of the standardized refined CDF ``G`` (SPEC §2).

        Parameters
        ----------
        p : float, array or tensor
            Tail mass left out, in [0, 1].

        Returns
        -------
        tuple of int32 arrays or tensors
            ``(lq, uq)``, on the parameters' device for tensors.

        Raises
        ------
        TypeError
            If ``p`` is not real.
        ValueError
            If ``p`` is empty, not finite or outside [0, 1].
        """
        q = _numpy(p, "p")
        if q.size == 0:
            raise ValueError("p must not be empty")
        if not np.isfinite(q).all() or ((q < 0) | (q > 1)).any():
            raise ValueError("p must contain finite values in [0, 1]")
        q, skew = np.broadcast_arrays(q, self._skew)
        q_lo = np.empty(q.shape)
        q_hi = np.empty(q.shape)
        for i in np.ndindex(q.shape):
            if q[i] == 0.0:  # the whole real line
                q_lo[i], q_hi[i] = -np.inf, np.inf
            else:
                q_lo[i] = refined_quantile_lo(0.5 * q[i], float(skew[i]))
                q_hi[i] = refined_quantile_hi(0.5 * q[i], float(skew[i]))
        with np.errstate(invalid="ignore"):
            lq = np.maximum(np.floor(self._scale * q_lo + self._loc) - 1.0, 0.0)
            uq = np.maximum(np.ceil(self._scale * q_hi + self._loc), 0.0)
        lq, uq = np.minimum(lq, self._dim), np.minimum(uq, self._dim)
        kind = self._kind
        if kind.torch is None:
            return np.asarray(lq).astype(np.int32), np.asarray(uq).astype(np.int32)
        return kind(lq, kind.torch.int32), kind(uq, kind.torch.int32)

    def __repr__(self) -> str:
        return (
            f"RefinedNormalPB(dim={self._dim!r}, loc={self._loc!r}, scale={self._scale!r}, "
            f"skew={self._skew!r})"
        )


class RefinedNormal(scipy.stats.rv_continuous):
    """The standardized refined normal distribution as a SciPy continuous distribution.

    CDF ``G(x; skew) = clip(Φ(x) + skew (1 − x²) φ(x) / 6, 0, 1)`` with one shape
    parameter ``skew`` (finite); every ``scipy.stats.rv_continuous`` method works
    (``cdf``, ``ppf``, ``interval``, ...), with SciPy's numerical inversion for the
    quantiles.

    Examples
    --------
    >>> from rankseg.distribution import RefinedNormal
    >>> lo, hi = RefinedNormal().interval(0.9, skew=0.0)
    >>> round(float(hi), 4)
    1.6449
    """

    def _argcheck(self, skew: Any) -> Any:
        return np.isfinite(skew)

    def _cdf(self, x: Any, skew: Any) -> Any:
        return _g(np.asarray(x, dtype=np.float64), np.asarray(skew, dtype=np.float64))
