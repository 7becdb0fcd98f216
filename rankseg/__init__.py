"""rankseg: RankSEG decision rules for segmentation probability maps."""

from typing import Any

from rankseg import functional
from rankseg._api import PredictInfo, PredictPlan, RankSEG, predict
from rankseg._threads import get_num_threads, num_threads, set_num_threads
from rankseg._validation import BadValuesError, ClassSumWarning
from rankseg.functional import rankdice_ba, rankseg_rma
from rankseg.tuning import TunedRankSEG, tune

__all__ = [
    "BadValuesError",
    "ClassSumWarning",
    "PredictInfo",
    "PredictPlan",
    "RankSEG",
    "RefinedNormal",
    "RefinedNormalPB",
    "TunedRankSEG",
    "__version__",
    "distribution",
    "functional",
    "get_num_threads",
    "num_threads",
    "predict",
    "rankdice_ba",
    "rankseg_rma",
    "set_num_threads",
    "tune",
]
__version__ = "0.1.0.dev0"

#: loaded on first use: rankseg.distribution imports scipy.stats (~0.3 s)
_LAZY = {
    "distribution": None,
    "RefinedNormal": "RefinedNormal",
    "RefinedNormalPB": "RefinedNormalPB",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module("rankseg.distribution")
        attribute = _LAZY[name]
        return module if attribute is None else getattr(module, attribute)
    raise AttributeError(f"module 'rankseg' has no attribute {name!r}")
