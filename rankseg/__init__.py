"""rankseg: RankSEG decision rules for segmentation probability maps."""

from rankseg._api import PredictInfo, RankSEG, predict
from rankseg._threads import get_num_threads, num_threads, set_num_threads
from rankseg._validation import ClassSumWarning
from rankseg.tuning import TunedRankSEG, tune

__all__ = [
    "ClassSumWarning",
    "PredictInfo",
    "RankSEG",
    "TunedRankSEG",
    "__version__",
    "get_num_threads",
    "num_threads",
    "predict",
    "set_num_threads",
    "tune",
]
__version__ = "0.1.0.dev0"
