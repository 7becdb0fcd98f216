"""Slow, obviously-correct oracles written directly from SPEC.md.

Plain Python/NumPy float64, no numba.  Clarity beats speed: tiny rows are solved by
enumerating every outcome (2^d) or every mask (2^d), exact objectives by the plain
Poisson-binomial convolution DP, RMA by a full stable sort.  The kernels in
``rankseg/`` are tested against these functions; ``tests/test_naive.py`` tests these
functions against each other and against first principles.

Conventions (SPEC §1, §6):

- one row = the probabilities ``p`` of one (sample, class): 1-D float64, length d;
- stable descending order = ``np.argsort(-p, kind="stable")`` (ties: lower flat index
  first);
- metrics use 0/0 := 0 (the papers' convention);
- tau* = the FIRST maximizer of the objective over tau in {0..d} (``np.argmax``);
- sums: mu and m_c are computed with ``math.fsum`` (correctly rounded, independent of
  order); prefix sums S_tau with ``np.cumsum`` over the sorted row (sequential).  Kernels
  that sum in another order differ by rounding only: compare values with a tolerance.

No randomness except through a passed ``rng`` (``np.random.default_rng``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "KINDS",
    "METRICS",
    "brute_force_best",
    "d0_bound",
    "exact_pi_dp",
    "exact_pi_enum",
    "expected_metric",
    "increment",
    "metric_value",
    "monte_carlo_metric",
    "poisson_binomial_pmf",
    "random_probs",
    "rma_objective",
    "rma_predict",
    "rma_row",
    "rma_set_value",
    "stable_order",
    "topk_mask",
]

METRICS = ("dice", "iou")

#: Largest d the enumeration oracles accept (2^d outcomes / masks).
MAX_ENUM_D = 16


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _row(p) -> np.ndarray:
    """Return ``p`` as a 1-D float64 array (a copy; never modifies the input)."""
    p = np.array(p, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(p)) or np.any(p < 0.0) or np.any(p > 1.0):
        raise ValueError("probabilities must be finite and lie in [0, 1]")
    return p


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def _check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not gamma >= 0.0:
        raise ValueError(f"gamma must be >= 0, got {gamma!r}")
    return gamma


def _safe_ratio(num, den):
    """Elementwise num/den with 0/0 := 0 (SPEC §1).  den == 0 with num != 0 is an error."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    zero = den == 0.0
    if np.any(zero & (num != 0.0)):
        raise ZeroDivisionError("nonzero numerator over a zero denominator")
    return np.where(zero, 0.0, num / np.where(zero, 1.0, den))


def _metric_from_counts(inter, n_pred, n_true, metric: str, gamma: float):
    """Dice_γ / IoU_γ (SPEC §1) from the counts Σδ_jY_j, Σδ_j, ΣY_j; 0/0 := 0.

    Vectorized over any broadcastable count arrays.
    """
    inter = np.asarray(inter, dtype=np.float64)
    n_pred = np.asarray(n_pred, dtype=np.float64)
    n_true = np.asarray(n_true, dtype=np.float64)
    if metric == "dice":
        return _safe_ratio(2.0 * inter + gamma, n_pred + n_true + gamma)
    return _safe_ratio(inter + gamma, n_pred + n_true - inter + gamma)


def stable_order(p) -> np.ndarray:
    """Indices of ``p`` in stable descending order (SPEC §6: ties, lower index first)."""
    return np.argsort(-_row(p), kind="stable")


def _all_binary_vectors(d: int) -> np.ndarray:
    """All 2^d binary vectors of length d as a (2^d, d) bool array (row k = bits of k)."""
    if d > MAX_ENUM_D:
        raise ValueError(f"enumeration over 2^{d} vectors refused (d > {MAX_ENUM_D})")
    k = np.arange(2**d, dtype=np.int64)[:, None]
    return ((k >> np.arange(d, dtype=np.int64)[None, :]) & 1).astype(bool)


# ---------------------------------------------------------------------------
# metric, expectation, brute force (SPEC §1)
# ---------------------------------------------------------------------------


def metric_value(mask, y, metric: str, gamma: float) -> float:
    """Samplewise Dice_γ or IoU_γ of one binary prediction vs one binary truth (SPEC §1).

    ``Dice = (2ΣδY + γ)/(Σδ + ΣY + γ)``, ``IoU = (ΣδY + γ)/(Σδ + ΣY − ΣδY + γ)``,
    with 0/0 := 0.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    mask = np.asarray(mask).reshape(-1).astype(bool)
    y = np.asarray(y).reshape(-1).astype(bool)
    if mask.shape != y.shape:
        raise ValueError("mask and y must have the same number of pixels")
    inter = int(np.sum(mask & y))
    return float(_metric_from_counts(inter, int(mask.sum()), int(y.sum()), metric, gamma))


def expected_metric(p, mask, metric: str, gamma: float) -> float:
    """Exact E[metric(mask, Y)] with Y_j ~ independent Bernoulli(p_j) (SPEC §1 goal).

    Enumerates all 2^d outcomes y with weight Π p_j^{y_j} (1−p_j)^{1−y_j}; p exactly
    0 or 1 simply gives weight 0 to impossible outcomes.  d ≤ ~14.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    p = _row(p)
    mask = np.asarray(mask).reshape(-1).astype(bool)
    if mask.shape != p.shape:
        raise ValueError("mask and p must have the same number of pixels")
    ys = _all_binary_vectors(p.size)  # (2^d, d)
    weights = np.prod(np.where(ys, p[None, :], 1.0 - p[None, :]), axis=1)
    inter = np.sum(ys & mask[None, :], axis=1)
    values = _metric_from_counts(inter, int(mask.sum()), ys.sum(axis=1), metric, gamma)
    return float(np.sum(weights * values))


def brute_force_best(p, metric: str, gamma: float, tol: float = 1e-12):
    """Best expected metric over ALL 2^d masks (SPEC §1, ranking-property check).

    Returns ``(best_value, optimal_masks)`` where ``optimal_masks`` is the list of every
    bool mask whose expected metric is ≥ best_value − tol.  d ≤ ~10.
    """
    p = _row(p)
    masks = _all_binary_vectors(p.size)
    values = np.array([expected_metric(p, m, metric, gamma) for m in masks])
    best = float(values.max())
    optimal = [masks[i].copy() for i in range(len(masks)) if values[i] >= best - tol]
    return best, optimal


def topk_mask(p, tau: int) -> np.ndarray:
    """Bool mask of the τ largest entries of ``p`` in stable descending order (SPEC §1, §6)."""
    p = _row(p)
    tau = int(tau)
    if not 0 <= tau <= p.size:
        raise ValueError(f"tau must lie in [0, {p.size}], got {tau}")
    mask = np.zeros(p.size, dtype=bool)
    mask[stable_order(p)[:tau]] = True
    return mask


def exact_pi_enum(p, metric: str, gamma: float) -> np.ndarray:
    """π(τ) = E[metric(top-τ mask, Y)] for τ = 0..d by full enumeration (SPEC §1-§2)."""
    p = _row(p)
    return np.array([expected_metric(p, topk_mask(p, t), metric, gamma) for t in range(p.size + 1)])


# ---------------------------------------------------------------------------
# exact objective by the plain Poisson-binomial DP (SPEC §2)
# ---------------------------------------------------------------------------


def poisson_binomial_pmf(q) -> np.ndarray:
    """pmf of Σ Bernoulli(q_i), length len(q)+1, by the convolution DP (SPEC §2).

    f ← f·(1−q) ⊕ shift(f)·q, starting from the point mass at 0.
    """
    q = _row(q)
    f = np.array([1.0])
    for qi in q:
        g = np.zeros(f.size + 1)
        g[:-1] += f * (1.0 - qi)
        g[1:] += f * qi
        f = g
    return f


def _expect_ratio(pmf: np.ndarray, num: float, c: float) -> float:
    """E[num / (c + X)] for X with the given pmf on 0..len-1; 0/0 := 0 (SPEC §1)."""
    k = np.arange(pmf.size, dtype=np.float64)
    return float(np.sum(pmf * _safe_ratio(np.full(pmf.size, float(num)), c + k)))


def exact_pi_dp(p, metric: str, gamma: float) -> np.ndarray:
    """Exact π(τ), τ = 0..d, from the SPEC §2 formulas with plain DPs (O(d³); d ≤ ~200).

    Dice: π(τ) = 2 Σ_{j≤τ} p_(j) E[1/(τ+1+γ+Γ_{−(j)})] + γ E[1/(τ+γ+Γ)], π(0) = γE[1/(γ+Γ)]
    (0/0 := 0, so π(0) = 0 when γ = 0); the pmf of Γ_{−(j)} is recomputed by the DP
    without pixel (j) (no deconvolution).
    IoU: π(τ) = (S_τ+γ)·E[1/(τ+γ+U_τ)], U_τ = Σ_{j>τ} Y_(j) by the DP over the tail.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    p = _row(p)
    d = p.size
    ps = p[stable_order(p)]
    pi = np.zeros(d + 1)
    if metric == "dice":
        pmf = poisson_binomial_pmf(ps)
        loo = [poisson_binomial_pmf(np.delete(ps, j)) for j in range(d)]
        for tau in range(d + 1):
            total = _expect_ratio(pmf, gamma, tau + gamma)
            for j in range(tau):
                total += 2.0 * ps[j] * _expect_ratio(loo[j], 1.0, tau + 1 + gamma)
            pi[tau] = total
    else:
        s = np.concatenate([[0.0], np.cumsum(ps)])
        for tau in range(d + 1):
            pmf_u = poisson_binomial_pmf(ps[tau:])
            pi[tau] = _expect_ratio(pmf_u, s[tau] + gamma, tau + gamma)
    return pi


# ---------------------------------------------------------------------------
# RMA (SPEC §2) and rows (SPEC §3, §7)
# ---------------------------------------------------------------------------


def rma_set_value(s: float, tau: int, mu: float, metric: str, gamma: float) -> float:
    """RMA objective of a set with mass ``s`` = Σp over it and size ``tau`` (SPEC §2).

    Dice: 2s/(μ+τ+1+γ) + γ/(μ+τ+γ); IoU: (s+γ)/(μ−s+τ+γ), for τ ≥ 1;
    F(empty) = γ/(μ+γ) if γ > 0 else 0.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    if tau == 0:
        return gamma / (mu + gamma) if gamma > 0 else 0.0
    if metric == "dice":
        return 2.0 * s / (mu + tau + 1 + gamma) + gamma / (mu + tau + gamma)
    return (s + gamma) / (mu - s + tau + gamma)


def rma_objective(p, metric: str, gamma: float) -> np.ndarray:
    """RMA objective F(τ), τ = 0..d, over the stable descending order (SPEC §2)."""
    p = _row(p)
    ps = p[stable_order(p)]
    s = np.concatenate([[0.0], np.cumsum(ps)])
    mu = math.fsum(p)
    return np.array([rma_set_value(s[t], t, mu, metric, gamma) for t in range(p.size + 1)])


def rma_row(p, metric: str, gamma: float, pruning_prob: float) -> dict:
    """Solve one row with RMA (SPEC §2 objective, §3 pruning, §6 ties, §7 info).

    Returns a dict with ``tau`` (int), ``threshold`` (smallest selected p, NaN if empty),
    ``score`` (F(τ*); F(0) for a pruned row), ``pruned`` (max(p) <= pruning_prob),
    ``mask`` (bool, the top-τ* stable set) and ``F`` (objective array; None if pruned).
    """
    p = _row(p)
    gamma = _check_gamma(gamma)
    mu = math.fsum(p)
    if p.max() <= pruning_prob:
        return {
            "tau": 0,
            "threshold": math.nan,
            "score": rma_set_value(0.0, 0, mu, metric, gamma),
            "pruned": True,
            "mask": np.zeros(p.size, dtype=bool),
            "F": None,
        }
    f = rma_objective(p, metric, gamma)
    tau = int(np.argmax(f))  # first maximizer
    ps = p[stable_order(p)]
    return {
        "tau": tau,
        "threshold": float(ps[tau - 1]) if tau > 0 else math.nan,
        "score": float(f[tau]),
        "pruned": False,
        "mask": topk_mask(p, tau),
        "F": f,
    }


def increment(p, m_c: float, n_c: int, mu_c: float, metric: str, gamma: float):
    """Increment F_c(safe_c ∪ {j}) − F_c(safe_c) by the SPEC §4 closed forms.

    Dice γ=0: D = n+μ+1, inc = 2(p − m/D)/(D+1).
    Dice γ>0: D = n+μ+1+γ, inc = 2(pD − m)/(D(D+1)) − γ/(D(D−1)).
    IoU: a = m+γ, b = n+μ−m+γ, inc = (p − (a/b)(1−p))/(b+1−p), a/b := 0 when b == 0.
    ``p`` may be a scalar (returns float) or an array (returns an array).
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    scalar = np.ndim(p) == 0
    p = np.asarray(p, dtype=np.float64)
    m, n, mu = float(m_c), float(n_c), float(mu_c)
    if metric == "dice":
        if gamma == 0.0:
            D = n + mu + 1.0
            inc = 2.0 * (p - m / D) / (D + 1.0)
        else:
            D = n + mu + 1.0 + gamma
            inc = 2.0 * (p * D - m) / (D * (D + 1.0)) - gamma / (D * (D - 1.0))
    else:
        a = m + gamma
        b = n + mu - m + gamma
        ratio = a / b if b != 0.0 else 0.0
        inc = (p - ratio * (1.0 - p)) / (b + 1.0 - p)
    return float(inc) if scalar else np.asarray(inc, dtype=np.float64)


# ---------------------------------------------------------------------------
# full predict (SPEC §4, §7)
# ---------------------------------------------------------------------------


def rma_predict(
    probs,
    metric: str = "dice",
    gamma: float = 0.0,
    output_mode: str = "multiclass",
    pruning_prob: float = 0.5,
    unassigned_policy: str = "max_score",
    void_index: int = 255,
):
    """RMA predictions for probs of shape (B, C, *S), following SPEC §4 to the letter.

    Per (b, c): :func:`rma_row` on the flattened spatial row.

    - multilabel: returns ``(masks, info)``, masks bool (B, C, *S);
    - multiclass: returns ``(labels, info, incs)``, labels int64 (B, *S), incs float64
      (B, C, *S) = increment of every class at every pixel.  Each pixel: one selecting
      class → it; several → the largest increment among them (ties → lowest index);
      none → ``'max_score'``: largest increment among the sample's unpruned classes (all
      classes when none is unpruned), or ``'void'``: ``void_index``.  Increments use
      safe_c = pixels selected by c alone, m_c = Σp over safe_c, n_c = |safe_c|,
      μ_c = Σp over the whole row of c.

    ``info`` is a dict of (B, C) arrays: tau (int64), threshold, score (float64), pruned.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    probs = np.array(probs, dtype=np.float64)
    if probs.ndim < 3:
        raise ValueError("probs must have shape (B, C, *S)")
    if output_mode not in ("multiclass", "multilabel"):
        raise ValueError(f"unknown output_mode {output_mode!r}")
    if unassigned_policy not in ("max_score", "void"):
        raise ValueError(f"unknown unassigned_policy {unassigned_policy!r}")
    B, C = probs.shape[:2]
    spatial = probs.shape[2:]
    d = int(np.prod(spatial))
    if output_mode == "multiclass" and C == 1:
        raise ValueError("multiclass output needs C >= 2; use output_mode='multilabel'")
    if output_mode == "multiclass" and unassigned_policy == "void" and 0 <= void_index < C:
        raise ValueError("void_index must lie outside [0, C)")
    rows = probs.reshape(B, C, d)

    info = {
        "tau": np.zeros((B, C), dtype=np.int64),
        "threshold": np.full((B, C), np.nan),
        "score": np.zeros((B, C)),
        "pruned": np.zeros((B, C), dtype=bool),
    }
    sel = np.zeros((B, C, d), dtype=bool)
    for b in range(B):
        for c in range(C):
            r = rma_row(rows[b, c], metric, gamma, pruning_prob)
            info["tau"][b, c] = r["tau"]
            info["threshold"][b, c] = r["threshold"]
            info["score"][b, c] = r["score"]
            info["pruned"][b, c] = r["pruned"]
            sel[b, c] = r["mask"]

    if output_mode == "multilabel":
        return sel.reshape(probs.shape), info

    labels = np.zeros((B, d), dtype=np.int64)
    incs = np.zeros((B, C, d))
    for b in range(B):
        count = sel[b].sum(axis=0)  # how many classes select each pixel
        for c in range(C):
            safe = sel[b, c] & (count == 1)
            m_c = math.fsum(rows[b, c][safe])
            n_c = int(safe.sum())
            mu_c = math.fsum(rows[b, c])
            incs[b, c] = increment(rows[b, c], m_c, n_c, mu_c, metric, gamma)
        active = ~info["pruned"][b]
        fallback = list(range(C)) if not active.any() else [c for c in range(C) if active[c]]
        for j in range(d):
            selecting = [c for c in range(C) if sel[b, c, j]]
            if len(selecting) == 1:
                labels[b, j] = selecting[0]
                continue
            if not selecting and unassigned_policy == "void":
                labels[b, j] = void_index
                continue
            candidates = selecting if selecting else fallback
            # first maximum in increasing class order: ties -> lowest class index
            best = candidates[0]
            for c in candidates[1:]:
                if incs[b, c, j] > incs[b, best, j]:
                    best = c
            labels[b, j] = best
    return labels.reshape((B,) + spatial), info, incs.reshape(probs.shape)


# ---------------------------------------------------------------------------
# Monte Carlo and the search bound
# ---------------------------------------------------------------------------


def monte_carlo_metric(p, mask, metric: str, gamma: float, n: int, rng):
    """(mean, standard error) of metric(mask, Y) over n truths Y ~ Bernoulli(p) (SPEC §1).

    ``rng`` is a ``np.random.Generator``; Y_j = (U < p_j) with U uniform on [0, 1), so
    p = 0 never and p = 1 always fires.
    """
    _check_metric(metric)
    gamma = _check_gamma(gamma)
    p = _row(p)
    mask = np.asarray(mask).reshape(-1).astype(bool)
    n = int(n)
    if n < 2:
        raise ValueError("n must be >= 2 for a standard error")
    ys = rng.random((n, p.size)) < p[None, :]
    inter = np.sum(ys & mask[None, :], axis=1)
    values = _metric_from_counts(inter, int(mask.sum()), ys.sum(axis=1), metric, gamma)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(n))


def d0_bound(p, gamma: float) -> int:
    """JMLR search bound d0 (SPEC §2) over the stable descending order.

    The first τ ≥ 1 with S_τ ≥ (τ + γ + d)·p_(τ+1), else d (p_(d+1) := 0).
    """
    gamma = _check_gamma(gamma)
    p = _row(p)
    d = p.size
    ps = p[stable_order(p)]
    s = np.concatenate([[0.0], np.cumsum(ps)])
    for tau in range(1, d + 1):
        p_next = ps[tau] if tau < d else 0.0
        if s[tau] >= (tau + gamma + d) * p_next:
            return tau
    return d


#: kinds of random probability maps of :func:`random_probs`
KINDS = ("uniform", "quantized", "binary", "skewed", "softmax", "mixed")


def random_probs(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random float64 probabilities of one kind (test inputs, not an oracle).

    ``quantized`` (multiples of 1/8) has many exact ties, ``binary`` only exact 0 and 1,
    ``softmax`` sums to one over axis 1, ``mixed`` is uniform with some exact 0, 1, 1/2.
    """
    if kind == "uniform":
        return rng.random(shape)
    if kind == "quantized":  # many exact ties
        return rng.integers(0, 9, shape) / 8
    if kind == "binary":  # exact 0 and 1
        return rng.integers(0, 2, shape).astype(float)
    if kind == "skewed":
        return rng.random(shape) ** 6
    if kind == "softmax":
        z = rng.normal(scale=3.0, size=shape)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    v = rng.random(shape)
    pick = rng.random(shape)
    v[pick < 0.15] = 0.0
    v[(pick >= 0.15) & (pick < 0.3)] = 1.0
    v[(pick >= 0.3) & (pick < 0.4)] = 0.5
    return v
