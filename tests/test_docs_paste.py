"""The code of docs/recipes.rst and docs/cli.rst runs when pasted, block by block, into a
fresh interpreter (issue: a command line that never writes a wrong file, part 5).

The Sphinx doctest build (tests/test_docs.py) checks the outputs, with its hidden
``testsetup`` blocks; a reader sees no hidden setup.  Here every block a reader sees
is run in page order in one fresh ``python`` process, in an empty folder, as a paste
would run it: ``.. code-block:: python``, ``.. testcode::`` and the ``>>>`` lines of
``.. doctest::`` in one namespace.  ``testsetup``/``testcleanup`` are never run.  The
``:class: not-run`` blocks (a SLURM cluster's code) are shown only.  The
``rankseg ...`` lines of ``.. code-block:: console`` blocks are parsed by the real
parser, and run (``python -m rankseg``) at their place in the page when their input
files exist there by then; other programs' lines (``nnUNetv2_predict``, ``mv``) are
shown, not run.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("recipes.rst", "cli.rst")
_DIRECTIVE = re.compile(r"^(\s*)\.\. (code-block|doctest|testcode|testsetup|testcleanup)::\s*(\S*)")


def blocks(text):
    """``(kind, code)`` of the page's blocks in order: 'python', 'console' or 'hidden'."""
    lines = text.splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, directive, arg = len(m.group(1)), m.group(2), m.group(3)
        i += 1
        body = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        options = [b.strip() for b in body if re.match(r"^\s*:\w[\w-]*:", b)]
        body = [b for b in body if not re.match(r"^\s*:\w[\w-]*:", b)]  # directive options
        code = textwrap.dedent("\n".join(body)).strip("\n")
        if ":class: not-run" in options:  # needs what a test cannot have (a SLURM cluster)
            out.append(("shown", code))
        elif directive in ("testsetup", "testcleanup"):
            out.append(("hidden", code))
        elif directive == "doctest":
            src = [ln[4:] for ln in code.splitlines() if ln.startswith((">>> ", "... "))]
            src += [""] if src else []
            out.append(("python", "\n".join(src)))
        elif directive == "testcode" or arg == "python":
            out.append(("python", code))
        elif arg == "console":
            out.append(("console", code))
    return out


def console_commands(code):
    """The command lines of a console block (``\\`` continuations joined, ``$ `` dropped)."""
    cmds, cur = [], ""
    for line in code.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            cmds.append(shlex.split(cur, comments=True))
        cur = ""
    return cmds


_RUNNER = r"""
import json, os, subprocess, sys, traceback
steps = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for k, (kind, code, where) in enumerate(steps):
    try:
        if kind == "python":
            exec(compile(code, where, "exec"), ns)
        else:  # a rankseg command line: run it where its inputs exist, else parse it
            from rankseg.cli import build_parser
            argv = code
            args = build_parser().parse_args(argv)
            inputs = [p for name in ("inputs", "preds", "target", "probs")
                      for p in (getattr(args, name, None) or [])]
            if args.command == "evaluate":
                inputs += args.info or []
            if inputs and all(os.path.exists(p) for p in inputs):
                proc = subprocess.run([sys.executable, "-m", "rankseg", *argv], text=True,
                                      capture_output=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"exit {proc.returncode}: {proc.stderr}")
                print(f"RAN {' '.join(argv)}")
            else:
                print(f"PARSED {' '.join(argv)}")
    except SystemExit as exc:
        print(f"FAILED {where}: SystemExit {exc.code}")
        sys.exit(1)
    except BaseException:
        print(f"FAILED {where}:")
        traceback.print_exc(file=sys.stdout)
        sys.exit(1)
print("ALL OK")
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_when_pasted(page, tmp_path):
    pytest.importorskip("nibabel")
    if page == "recipes.rst":  # its MONAI recipes run a (stand-in) torch network
        pytest.importorskip("torch")
        pytest.importorskip("monai")
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    steps = []
    n_console = 0
    for k, (kind, code) in enumerate(blocks(text)):
        where = f"docs/{page}, block {k + 1}"
        if kind == "python":
            steps.append(("python", code, where))
        elif kind == "console":
            for words in console_commands(code):
                while words and "=" in words[0]:  # VAR=value rankseg ...
                    words = words[1:]
                if words and words[0] == "rankseg":
                    steps.append(("rankseg", words[1:], where))
                    n_console += 1
    assert sum(kind == "python" for kind, _, _ in steps) >= (3 if page == "recipes.rst" else 1)
    assert n_console >= 3
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    (tmp_path / "runner.py").write_text(_RUNNER)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "steps.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    ran = {
        "recipes.rst": ("predict nnunet_out/ -o rankseg_out/", "predict monai_out/ -o seg_cli/",
                        "predict probs.zarr -o labels/ --batch"),
        "cli.rst": ("predict probs/ -o labels/ --info info.csv", "evaluate labels/ --target gt/",
                    "evaluate labels --target gt --json summary.json --info info.csv --probs"),
    }[page]  # fmt: skip
    for cmd in ran:  # on the data the pasted blocks made
        assert f"RAN {cmd}" in proc.stdout, proc.stdout


def test_blocks_parser_sees_what_a_reader_sees():
    text = textwrap.dedent(
        """
        Intro.

        .. testsetup:: g

           hidden = 1

        .. code-block:: python
           :caption: x

           a = 1

        .. doctest:: g

           >>> b = a + 1
           >>> for i in range(2):
           ...     b += i
           >>> b
           3

        .. code-block:: console

           $ rankseg predict in -o out \\
               --info i.csv   # a comment
        """
    )
    got = blocks(text)
    assert [k for k, _ in got] == ["hidden", "python", "python", "console"]
    assert got[1][1] == "a = 1"
    assert got[2][1] == "b = a + 1\nfor i in range(2):\n    b += i\nb\n"
    assert console_commands(got[3][1]) == [["rankseg", "predict", "in", "-o", "out", "--info",
                                            "i.csv"]]  # fmt: skip
