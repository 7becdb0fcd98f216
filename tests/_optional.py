"""``import_or_skip``: pytest.importorskip that also skips on broken installs.

``pytest.importorskip`` skips only on ImportError.  A package that is installed
but cannot load -- a CUDA torch wheel without its libraries (OSError), a
torchvision built for another torch ("operator torchvision::nms does not exist",
RuntimeError, raised by ``import torchmetrics``) -- would error the test instead
of skipping it.  Those are skips too, with the reason in the message.
"""

from typing import Any

import pytest


def import_or_skip(name: str, reason: str | None = None) -> Any:
    """Import ``name`` or skip the calling test (or module) if it cannot be imported."""
    try:
        return pytest.importorskip(name, reason=reason)
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"{name} is installed but cannot be imported: {type(exc).__name__}: {exc}")
