"""rankseg: RankSEG decision rules for segmentation probability maps."""

from rankseg._api import PredictInfo, RankSEG, predict
from rankseg._validation import ClassSumWarning

__all__ = ["ClassSumWarning", "PredictInfo", "RankSEG", "predict", "__version__"]
__version__ = "0.1.0.dev0"
