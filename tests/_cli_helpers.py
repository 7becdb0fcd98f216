"""Helpers shared by the command-line tests."""

import numpy as np

from rankseg.__main__ import main


def softmax(rng, shape, axis=0, dtype=np.float32):
    """Random softmax probabilities of ``shape`` along ``axis``."""
    x = rng.standard_normal(shape) * 3
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(dtype)


def run(capsys, *args):
    """Run ``rankseg ARGS``; return (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err
