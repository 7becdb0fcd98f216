"""What people expect of a command line: examples in every --help, -v/-q through logging,
a per-case progress line (issue: a command line that never writes a wrong file, part 5)."""

import argparse
import logging
import shlex

import numpy as np
import pytest

from rankseg.cli import _EXAMPLES, build_parser, main
from rankseg.datasets import ct3d


def _subparsers(parser):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _example_commands(text):
    """The ``rankseg ...`` command lines of an example block (continuations joined)."""
    lines, cmd = [], ""
    for line in text.splitlines()[1:]:
        line = line.split("   (")[0].strip()  # a trailing "(comment)"
        cmd += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            lines.append(cmd)
            cmd = ""
    out = []
    for line in lines:
        words = shlex.split(line)
        while words and "=" in words[0]:  # VAR=value rankseg ...
            words.pop(0)
        assert words[0] == "rankseg", line
        out.append(words[1:])
    return out


def test_every_help_ends_with_an_example_the_parser_takes(capsys):
    parser = build_parser()
    subs = _subparsers(parser)
    assert sorted(subs) == sorted(k for k in _EXAMPLES if k != "rankseg")
    for name, sub in [("rankseg", parser), *subs.items()]:
        text = sub.format_help()
        assert "Example" in text, name
        example = text[text.rindex("Example") :]
        assert example.strip() == _EXAMPLES[name].strip(), name  # printed as written
        for words in _example_commands(_EXAMPLES[name]):
            if words == ["COMMAND", "-h"]:
                continue
            args = parser.parse_args(words)  # the real parser takes every example
            if name != "rankseg":
                assert args.command == name


def test_help_wraps_descriptions_but_keeps_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "  rankseg predict probs.npy -o labels --batch --metric iou\n" in out


@pytest.fixture
def three_cases(tmp_path):
    for i in range(3):
        np.save(tmp_path / f"c{i}.npy", ct3d(seed=i, shape=(1, 3, 4, 6, 5))[0])
    return tmp_path


def test_progress_lines_quiet_and_verbose(three_cases, capsys):
    d = three_cases
    code = main(["predict", str(d / "c0.npy"), str(d / "c1.npy"), str(d / "c2.npy"),
                 "-o", str(d / "o1")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0 and out.out == ""
    lines = out.err.splitlines()
    # no terminal here: one line per case (the tqdm bar needs one), then the summary
    assert lines[:3] == [
        f"[{k + 1}/3] {d / f'c{k}.npy'} -> {d / 'o1' / f'c{k}.npy'}" for k in range(3)
    ]
    assert lines[3].startswith("rankseg predict: 3 written") and len(lines) == 4
    # -q (before or after the command): warnings and errors only
    for k, argv in enumerate((["-q", "predict"], ["predict", "-q"], ["predict", "--quiet"])):
        code = main([*argv, str(d / "c0.npy"), "-o", str(d / f"o2-{k}")])
        assert code == 0 and capsys.readouterr().err == ""
    code = main(["predict", "-q", str(d / "c0.npy"), str(d / "missing.npy"), "-o", str(d / "o3")])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines() == [f"error: {d / 'missing.npy'}: no such file: "
                                              f"{d / 'missing.npy'}"]  # fmt: skip
    # -v: debugging details too; --no-progress moves the case lines to DEBUG
    code = main(["-v", "predict", str(d / "c0.npy"), "-o", str(d / "o4"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "1 case(s) to decide, 1 worker(s)" in err and "[1/1]" in err
    # the library's own DEBUG lines (rankseg.io) reach the same handler
    assert f"{d / 'c0.npy'}: read as npy, class axis 0 -> probabilities (1, 3, 4, 6, 5)" in err
    code = main(["predict", str(d / "c0.npy"), "-o", str(d / "o5"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and "[1/1]" not in err and "to decide" not in err and "1 written" in err


def test_logging_is_configured_only_while_a_command_runs(three_cases, capsys):
    root = logging.getLogger("rankseg")
    before = (list(root.handlers), root.level, root.propagate)
    seen = []

    class Spy(logging.Handler):
        def emit(self, record):
            seen.append((record.name, record.levelname, record.getMessage()))

    spy = Spy()
    root.addHandler(spy)
    try:
        main(["predict", str(three_cases / "c0.npy"), "-o", str(three_cases / "o")])
    finally:
        root.removeHandler(spy)
    assert (list(root.handlers), root.level, root.propagate) == before
    assert ("rankseg.cli", "INFO", seen[-1][2]) == seen[-1] and "1 written" in seen[-1][2]
    # the library never configures a handler of its own
    import rankseg.io  # noqa: F401

    assert root.handlers == before[0]


def test_evaluate_quiet_keeps_the_table_on_stdout(three_cases, capsys):
    d = three_cases
    main(["predict", "-q", str(d / "c0.npy"), "-o", str(d / "pred")])
    np.save(d / "gt.npy", np.load(d / "pred" / "c0.npy"))
    capsys.readouterr()
    code = main(["evaluate", str(d / "pred" / "c0.npy"), "--target", str(d / "gt.npy"), "-q"])
    out = capsys.readouterr()
    assert code == 0 and out.err == ""
    assert out.out.splitlines()[-1].split() == ["mean", "1.0000"]
    code = main(["evaluate", str(d / "pred" / "c0.npy"), "--target", str(d / "gt.npy")])
    out2 = capsys.readouterr()
    assert out2.out == out.out and "1 case(s) evaluated, 0 failed" in out2.err


def test_warmup_prints_its_table_unless_quiet(capsys, monkeypatch):
    from rankseg.cli import _warmup

    monkeypatch.setattr(
        _warmup, "warmup", lambda *a: [("float32", "acc", "tr", "multilabel", 0.25)]
    )
    assert main(["warmup", "-q"]) == 0  # -q: nothing at all (a Docker build step)
    assert capsys.readouterr() == ("", "")
    assert main(["warmup"]) == 0  # the table of calls is the command's output
    out = capsys.readouterr()
    assert out.err == "" and out.out.splitlines()[0].split() == [
        "float32", "acc", "tr", "multilabel", "0.25", "s"
    ]  # fmt: skip
    assert out.out.splitlines()[1].startswith("1 calls in ")


def test_a_terminal_gets_the_tqdm_bar_else_the_lines(three_cases, capsys, monkeypatch):
    import sys

    d = three_cases
    inputs = [str(d / f"c{k}.npy") for k in range(3)]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    try:
        import tqdm
    except ImportError:  # the base install: only the second half applies
        tqdm = None
    if tqdm is not None:
        assert main(["predict", *inputs, "-o", str(d / "a")]) == 0
        err = capsys.readouterr().err
        assert "3/3 [" in err and "[1/3]" not in err  # tqdm's bar, not the lines
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the base install: no tqdm
    assert main(["predict", *inputs, "-o", str(d / "b")]) == 0
    err = capsys.readouterr().err
    assert "[1/3]" in err and "[3/3]" in err
