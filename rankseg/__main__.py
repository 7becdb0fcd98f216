"""``python -m rankseg`` (and the ``rankseg`` command): a demo on a generated volume.

It builds a seeded 3-D softmax probability volume, decides labels with ``np.argmax``
and with RankSEG (Dice and IoU), and prints, for each, the Dice and IoU realized
against ground truths drawn from the probabilities (mean ± standard error over the
draws, averaged over classes) and the time as a ratio to ``np.argmax``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["main"]


def demo(shape: Sequence[int], seed: int, draws: int, repeat: int) -> str:
    """Run the demo and return the printed report.

    Parameters
    ----------
    shape : sequence of int
        ``(B, C, Z, Y, X)`` of the generated softmax volume.
    seed : int
        Seed of the volume and of the ground-truth draws.
    draws : int
        Number of ground truths drawn from the probabilities.
    repeat : int
        Timing repetitions (the median is reported).

    Returns
    -------
    str
        The report.
    """
    from rankseg import predict
    from rankseg.datasets import make_probs, sample_truth
    from rankseg.metrics import samplewise_score

    nc = shape[1]
    bias = np.zeros(nc, dtype=np.float32)
    bias[0] = 4.0  # a dominant background, organs/lesions as foreground classes
    probs = make_probs(shape, kind="softmax", smoothness=5.0, sharpness=3.0, bias=bias, seed=seed)
    methods: dict[str, Callable[[], np.ndarray]] = {
        "argmax": lambda: np.argmax(probs, axis=1),
        "rankseg dice (rma)": lambda: predict(probs, metric="dice"),
        "rankseg iou (rma)": lambda: predict(probs, metric="iou"),
    }
    labels = {name: fn() for name, fn in methods.items()}  # also compiles / loads the JIT cache
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):  # interleaved, so every method sees the same machine load
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t_argmax = float(np.median(times["argmax"]))
    ratios = {name: float(np.median(t)) / t_argmax for name, t in times.items()}
    rng = np.random.default_rng(seed + 1)
    scores: dict[str, dict[str, list[float]]] = {n: {"dice": [], "iou": []} for n in methods}
    for _ in range(draws):
        truth = sample_truth(probs, rng, kind="softmax")
        for name, lab in labels.items():
            for metric in ("dice", "iou"):
                s = samplewise_score(lab, truth, metric=metric, num_classes=nc)
                scores[name][metric].append(float(s[:, 1:].mean()))  # foreground classes
    _, info = predict(probs, metric="dice", return_info=True)

    def fmt(vals: list[float]) -> str:
        a = np.asarray(vals)
        se = a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else float("nan")
        return f"{a.mean():.4f} ± {se:.4f}"

    lines = [
        f"rankseg demo: softmax volume {tuple(shape)} (float32, seed {seed}), "
        f"{draws} ground truths drawn from the probabilities",
        f"scores: mean over the {nc - 1} foreground classes; time: median of {repeat} runs "
        f"as a ratio to np.argmax ({t_argmax * 1e3:.1f} ms)",
        "",
        f"{'method':<22}{'Dice':>18}{'IoU':>18}{'time / argmax':>16}",
    ]
    for name in methods:
        lines.append(
            f"{name:<22}{fmt(scores[name]['dice']):>18}{fmt(scores[name]['iou']):>18}"
            f"{ratios[name]:>15.2f}x"
        )
    lines += [
        "",
        "RankSEG's own estimate of the expected Dice per class (info.score, sample 0): "
        + ", ".join(f"{s:.3f}" for s in info.score[0, 1:]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rankseg``.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="rankseg",
        description="RankSEG demo: argmax vs RankSEG on a generated 3-D probability volume.",
    )
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="run the demo (the default command)")
    for p in (parser, p_demo):
        p.add_argument("--shape", type=int, nargs=5, default=[1, 6, 48, 96, 96],
                       metavar=("B", "C", "Z", "Y", "X"), help="volume shape (default: 1 6 48 96 96)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        p.add_argument("--draws", type=int, default=20, help="ground-truth draws (default: 20)")
        p.add_argument("--repeat", type=int, default=5, help="timing repetitions (default: 5)")
    args = parser.parse_args(argv)
    if args.shape[1] < 2 or min(args.shape) < 1 or args.draws < 2 or args.repeat < 1:
        parser.error("need C >= 2, every size >= 1, --draws >= 2 and --repeat >= 1")
    print(demo(args.shape, args.seed, args.draws, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
