"""Shared fixtures: the gate for tests marked ``@pytest.mark.kernel`` (see tests/netns.py)."""

from __future__ import annotations

import netns
import pytest


@pytest.fixture(scope="session")
def kernel() -> None:
    """Skip when network namespaces are unusable here (not root, no ``ip netns``); under
    ``CI=true`` fail instead. Module fixtures that build namespaces depend on it."""
    netns.require_kernel()


@pytest.fixture(autouse=True)
def _kernel_marker(request: pytest.FixtureRequest) -> None:
    """Apply the :func:`kernel` gate to every test marked ``kernel``."""
    if request.node.get_closest_marker("kernel") is not None:
        request.getfixturevalue("kernel")
