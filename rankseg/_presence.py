"""Whether a class is in an image at all: the image-level presence model (SPEC §8).

Under the ``empty="one"`` convention (an empty truth scores 1 when the mask is empty too,
MONAI's ``DiceMetric(ignore_empty=False)``) the decision for a (sample, class) compares
the score of the empty mask, ``P(absent)``, with that of the best mask,
``P(present) · E[Dice | present]``.  ``P(absent)`` cannot come from the independent-pixel
model (``Π (1 − p_j)`` is about 0 for any class with diffuse probability), so it comes
from a small logistic model over image-level features of the class's probability map,
fitted on labelled validation cases (:class:`PresenceModel`).

The features of a (sample, class) row with ``d`` pixels (:func:`presence_features`):

* ``logit(max p)``;
* ``logit(mean of the k largest p)``, ``k = ceil(d / 1000)``;
* ``log(1 + n)``, ``n`` the number of pixels the class wins: argmax over classes
  (multiclass) or ``p > 0.5`` (multilabel);
* ``log(1 + Σ p)``, the expected volume.

The model is pooled over classes (one set of coefficients for every class): a model
per class learns nothing where validation has every class in every image, and pooled
coefficients transfer to classes whose absence validation never shows.

This module uses NumPy and SciPy only (``import rankseg`` never imports numba).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["N_FEATURES", "PresenceModel", "presence_features", "topk_count"]

#: number of features per (sample, class) row
N_FEATURES = 4
#: probabilities are clipped to [_CLIP, 1 - _CLIP] before a logit
_CLIP = 1e-6


def topk_count(d: int) -> int:
    """Return the ``k`` of the top-``k`` mean feature of a ``d``-pixel row: ``ceil(d / 1000)``.

    Parameters
    ----------
    d : int
        Pixels per row (``prod(spatial)``), at least 1.

    Returns
    -------
    int
        ``k >= 1``.

    Examples
    --------
    >>> from rankseg._presence import topk_count
    >>> topk_count(10_800), topk_count(5)
    (11, 1)
    """
    return max(1, math.ceil(d / 1000))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.log(q) - np.log1p(-q)


def presence_features(
    rows: np.ndarray, pmax: np.ndarray, mass: np.ndarray, wins: np.ndarray
) -> np.ndarray:
    """Image-level features of each (sample, class) row of a probability map.

    Parameters
    ----------
    rows : ndarray, shape (R, d)
        Probabilities of each row (float16/32/64); read one row at a time.
    pmax : ndarray, shape (R,)
        Largest probability of each row.
    mass : ndarray, shape (R,)
        ``Σ p`` of each row.
    wins : ndarray, shape (R,)
        Pixels the class wins in each row (argmax over classes, or ``p > 0.5``).

    Returns
    -------
    ndarray of float64, shape (R, N_FEATURES)
        ``logit(max p)``, ``logit(top-k mean)``, ``log1p(wins)``, ``log1p(Σ p)``.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg._presence import presence_features
    >>> x = np.array([[0.9, 0.1, 0.0, 0.0]])
    >>> presence_features(x, x.max(1), x.sum(1), np.array([1])).round(3)
    array([[2.197, 2.197, 0.693, 0.693]])
    """
    nrow, d = rows.shape
    k = topk_count(d)
    topk = np.empty(nrow)
    for r in range(nrow):
        row = rows[r]
        top = row if k >= d else np.partition(row, d - k)[d - k :]
        topk[r] = top.astype(np.float64).mean()
    feats = np.empty((nrow, N_FEATURES))
    feats[:, 0] = _logit(np.asarray(pmax, dtype=np.float64))
    feats[:, 1] = _logit(topk)
    feats[:, 2] = np.log1p(np.asarray(wins, dtype=np.float64))
    feats[:, 3] = np.log1p(np.asarray(mass, dtype=np.float64))
    return feats


class PresenceModel:
    """Logistic model of ``P(class present in the image)`` from :func:`presence_features`.

    One set of coefficients for every class (pooled), fitted by L2-regularised maximum
    likelihood on standardised features (SciPy's L-BFGS-B).

    Parameters
    ----------
    l2 : float
        Ridge penalty on the (standardised) coefficients, per sample: the loss is the
        mean log-loss plus ``l2 / 2 · |w|²``.

    Attributes
    ----------
    coef_ : ndarray, shape (N_FEATURES,)
        Coefficients of the standardised features.
    intercept_ : float
        Intercept.
    mean_, scale_ : ndarray, shape (N_FEATURES,)
        The standardisation of the features.
    n_absent_, n_present_ : int
        Absent and present rows the model was fitted on.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg._presence import PresenceModel
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(200, 4)); y = f[:, 0] + 0.3 * rng.normal(size=200) > 0
    >>> m = PresenceModel().fit(f, y)
    >>> bool(m.predict_proba(np.array([[3.0, 0, 0, 0]]))[0] > 0.9)
    True
    """

    def __init__(self, l2: float = 1e-3) -> None:
        if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
            raise ValueError(f"l2 must be a finite number >= 0; got {l2!r}")
        self.l2 = float(l2)

    def fit(self, features: Any, present: Any) -> PresenceModel:
        """Fit on rows of features and whether the class was present in the truth.

        Parameters
        ----------
        features : array-like, shape (R, N_FEATURES)
            From :func:`presence_features`.
        present : array-like of bool, shape (R,)
            Whether each row's class has at least one pixel in the truth.

        Returns
        -------
        PresenceModel
            ``self``, fitted.

        Raises
        ------
        ValueError
            If the shapes disagree, a feature is not finite, or the rows are all present
            or all absent (nothing to learn a boundary from).
        """
        from scipy.optimize import minimize

        f = np.asarray(features, dtype=np.float64)
        y = np.asarray(present, dtype=bool)
        if f.ndim != 2 or f.shape[1] != N_FEATURES or y.shape != (f.shape[0],):
            raise ValueError(
                f"features must have shape (R, {N_FEATURES}) and present shape (R,); got "
                f"{f.shape} and {y.shape}"
            )
        if not np.isfinite(f).all():
            raise ValueError("features must be finite")
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            raise ValueError(
                f"the presence model needs rows with the class present and rows with it "
                f"absent; got {n_pos} present and {n_neg} absent"
            )
        self.mean_ = f.mean(axis=0)
        scale = f.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        z = (f - self.mean_) / self.scale_
        t = y.astype(np.float64)
        n = float(y.size)
        l2 = self.l2

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            s = z @ w[1:] + w[0]
            # log(1 + e^s) - t s, stably
            val = np.logaddexp(0.0, s) - t * s
            g = 1.0 / (1.0 + np.exp(-s)) - t
            grad = np.empty_like(w)
            grad[0] = g.sum() / n
            grad[1:] = z.T @ g / n + l2 * w[1:]
            return float(val.sum() / n + 0.5 * l2 * w[1:] @ w[1:]), grad

        res = minimize(loss, np.zeros(N_FEATURES + 1), jac=True, method="L-BFGS-B")
        self.intercept_ = float(res.x[0])
        self.coef_ = res.x[1:].copy()
        self.n_present_, self.n_absent_ = n_pos, n_neg
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("this PresenceModel is not fitted yet; call fit(features, present)")

    def predict_proba(self, features: Any) -> np.ndarray:
        """``P(present)`` of each row.

        Parameters
        ----------
        features : array-like, shape (R, N_FEATURES)
            From :func:`presence_features`.

        Returns
        -------
        ndarray of float64, shape (R,)
            Probabilities in (0, 1).
        """
        self._check_fitted()
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != N_FEATURES:
            raise ValueError(f"features must have shape (R, {N_FEATURES}); got {f.shape}")
        s = ((f - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 0.5 * (1.0 + np.tanh(0.5 * s))

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted model as JSON-serialisable values.

        Returns
        -------
        dict
            ``l2``, ``coef``, ``intercept``, ``mean``, ``scale``, ``n_present``,
            ``n_absent``.
        """
        self._check_fitted()
        return {
            "l2": self.l2,
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "n_present": self.n_present_,
            "n_absent": self.n_absent_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PresenceModel:
        """Rebuild a model from :meth:`to_dict`'s values.

        Parameters
        ----------
        d : dict
            As :meth:`to_dict` returns.

        Returns
        -------
        PresenceModel
            The fitted model.

        Raises
        ------
        ValueError
            If a key is missing or a vector has the wrong length.
        """
        try:
            m = cls(d["l2"])
            m.coef_ = np.asarray(d["coef"], dtype=np.float64)
            m.intercept_ = float(d["intercept"])
            m.mean_ = np.asarray(d["mean"], dtype=np.float64)
            m.scale_ = np.asarray(d["scale"], dtype=np.float64)
            m.n_present_, m.n_absent_ = int(d["n_present"]), int(d["n_absent"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a presence model: {err!r}") from None
        if any(a.shape != (N_FEATURES,) for a in (m.coef_, m.mean_, m.scale_)):
            raise ValueError(f"a presence model has {N_FEATURES} coefficients")
        return m

    def __repr__(self) -> str:
        fitted = "fitted" if hasattr(self, "coef_") else "not fitted"
        return f"PresenceModel(l2={self.l2!r}) [{fitted}]"
