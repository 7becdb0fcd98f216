"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert namespace["labels"].shape == (1, 64, 128, 128)
    assert namespace["masks"].shape == (1, 8, 64, 128, 128)
    assert namespace["info"].score.shape == (1, 8)
    assert capsys.readouterr().out.strip()
