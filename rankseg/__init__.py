"""rankseg: RankSEG decision rules for segmentation probability maps."""

from rankseg._api import PredictInfo, RankSEG, predict
from rankseg._validation import ClassSumWarning
from rankseg.tuning import TunedRankSEG, tune

__all__ = [
    "ClassSumWarning",
    "PredictInfo",
    "RankSEG",
    "TunedRankSEG",
    "__version__",
    "predict",
    "tune",
]
__version__ = "0.1.0.dev0"
