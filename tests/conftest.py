import numpy as np
import pytest


@pytest.fixture
def rng():
    """The one source of randomness of a test: seeded, local, no global state."""
    return np.random.default_rng(20261126)
