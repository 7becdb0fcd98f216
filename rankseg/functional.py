"""The torch package's function API: ``rankseg``, ``rankseg_rma`` and ``rankdice_ba``.

Code written for the torch-based RankSEG package (``rankseg`` 0.0.8 on PyPI) runs
unchanged: these functions take the same parameters, with the same defaults, and
return the input's kind (a torch tensor for a tensor, on its device; a NumPy array
for a NumPy array).  They are thin calls of :class:`rankseg.RankSEG`, so every input
this package accepts works here too (docs/coming_from_torch.rst lists what is the
same and what differs).
"""

from __future__ import annotations

from typing import Any

from rankseg import _validation as v
from rankseg._api import RankSEG

__all__ = ["rankdice_ba", "rankseg", "rankseg_rma"]

_BA_SOLVERS = ("ba", "trna", "ba+trna")


def rankseg(
    probs: Any,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    solver: str = "RMA",
    pruning_prob: float = 0.5,
    **solver_params: Any,
) -> Any:
    """Convert probability maps to segmentation predictions (the torch package's signature).

    Parameters
    ----------
    probs : array-like, shape (B, C, *spatial)
        Probabilities in [0, 1]: a torch tensor (CPU or CUDA; float16, bfloat16,
        float32, float64), a NumPy array, a CuPy array.
    metric : {'dice', 'iou', 'acc', 'accuracy'}
        The metric to optimize (case-insensitive).
    smooth : float
        Smoothing ``γ >= 0`` of Dice/IoU.
    output_mode : {'multiclass', 'multilabel'}
        Label map ``(B, *spatial)`` (int64) or boolean masks ``(B, C, *spatial)``.
    solver : str
        ``'RMA'`` (default), ``'BA'``, ``'TRNA'``, ``'BA+TRNA'``, ``'exact'``
        (Dice), ``'RMA'``, ``'exact'`` (IoU), ``'argmax'``, ``'TR'`` (accuracy);
        case-insensitive.  An unsupported combination raises ValueError.
    pruning_prob : float
        A class whose largest probability is ``<= pruning_prob`` gets an empty mask.
    **solver_params
        ``unassigned_policy``, ``void_index``, ``eps``, ``safe_screening``: see
        :class:`rankseg.RankSEG`.

    Returns
    -------
    array of the input's kind
        int64 labels (multiclass) or bool masks (multilabel).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.functional import rankseg
    >>> probs = np.array([[[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]]])
    >>> rankseg(probs, metric="dice", solver="RMA")
    array([[[0, 0, 1]]])
    """
    return RankSEG(metric, smooth, output_mode, solver, pruning_prob, **solver_params)(probs)


def rankseg_rma(
    probs: Any,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    pruning_prob: float = 0.5,
    unassigned_policy: str = "max_score",
    void_index: int = 255,
    safe_screening: bool | str = False,
) -> Any:
    """RankSEG with the reciprocal moment approximation (RMA) for Dice or IoU.

    The torch package's ``rankseg_rma``, same parameters and defaults.

    Parameters
    ----------
    probs : array-like, shape (B, C, *spatial)
        Probabilities in [0, 1] (torch tensor, NumPy array, CuPy array).
    metric : {'dice', 'iou'}
        The metric (case-insensitive).
    smooth : float
        Smoothing ``γ >= 0``.
    output_mode : {'multiclass', 'multilabel'}
        Label map or overlapping masks.
    pruning_prob : float
        A class whose largest probability is ``<= pruning_prob`` gets an empty mask.
    unassigned_policy : {'max_score', 'void'}
        Pixels no class selected (multiclass): the class with the largest
        increment score, or ``void_index``.  ``'void'`` needs multiclass output.
    void_index : int
        Label of unassigned pixels with ``'void'``; outside ``[0, C)``.  A value
        other than 255 needs ``output_mode='multiclass'`` and ``'void'``.
    safe_screening : bool or 'auto'
        Accepted, no effect: our RMA screens exactly (the masks equal the full
        sort's).

    Returns
    -------
    array of the input's kind
        int64 labels ``(B, *spatial)`` or bool masks ``(B, C, *spatial)``.

    Raises
    ------
    TypeError
        If ``unassigned_policy`` is not a string or ``void_index`` not an integer.
    ValueError
        If ``metric`` is not Dice or IoU, or the policy parameters do not fit the
        output mode.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg import rankseg_rma
    >>> probs = np.array([[[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]]])
    >>> rankseg_rma(probs, output_mode="multilabel")[0, :, 0]
    array([[ True,  True, False],
           [False,  True,  True]])
    """
    name = v.check_name(metric, "metric", ("dice", "iou"))
    mode = v.check_name(output_mode, "output_mode", ("multiclass", "multilabel"))
    policy = v.check_name(unassigned_policy, "unassigned_policy", ("max_score", "void"))
    void_index = v.check_int(void_index, "void_index")
    if mode == "multilabel" and policy != "max_score":
        raise ValueError(
            "unassigned_policy='void' applies to output_mode='multiclass' only (multilabel "
            "masks have no unassigned pixels to label)"
        )
    if void_index != 255 and policy != "void":
        raise ValueError(
            "a void_index other than 255 needs output_mode='multiclass' and "
            f"unassigned_policy='void'; got void_index={void_index}, "
            f"unassigned_policy={policy!r}, output_mode={mode!r}"
        )
    params: dict[str, Any] = {"safe_screening": safe_screening}
    if mode == "multiclass":
        params["unassigned_policy"] = policy
        if policy == "void":
            params["void_index"] = void_index
    return RankSEG(name, smooth, mode, "rma", pruning_prob, **params)(probs)


def rankdice_ba(
    probs: Any,
    solver: str = "BA",
    smooth: float = 0.0,
    eps: float = 1e-4,
    pruning_prob: float = 0.5,
) -> Any:
    """RankDice masks with the refined-normal solvers (BA, TRNA, BA+TRNA).

    The torch package's ``rankdice_ba``, same parameters and defaults: boolean
    masks per class (multilabel).

    Parameters
    ----------
    probs : array-like, shape (B, C, *spatial)
        Probabilities in [0, 1] (torch tensor, NumPy array, CuPy array).
    solver : {'BA', 'TRNA', 'BA+TRNA'}
        Blind approximation, truncated refined normal approximation, or BA where
        the row's standard deviation exceeds 5 and TRNA elsewhere
        (case-insensitive).
    smooth : float
        Smoothing ``γ >= 0`` of Dice.
    eps : float
        Tail mass outside the refined-normal window, in (0, 1).
    pruning_prob : float
        A class whose largest probability is ``<= pruning_prob`` gets an empty mask.

    Returns
    -------
    array of the input's kind
        bool masks ``(B, C, *spatial)``.

    Raises
    ------
    ValueError
        If ``solver`` is not one of the three.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg import rankdice_ba
    >>> probs = np.array([[[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]]])
    >>> rankdice_ba(probs, solver="TRNA").shape
    (1, 2, 1, 3)
    """
    name = v.check_name(solver, "solver", _BA_SOLVERS)
    return RankSEG("dice", smooth, "multilabel", name, pruning_prob, eps=eps)(probs)
