"""Shared fixtures: the gate for tests marked ``@pytest.mark.kernel`` (see tests/netns.py)."""

from __future__ import annotations

import os

import netns
import pytest

# The examples carry an exception that expires on 2027-06-30. Pin the date every test (and every
# netguard subprocess it starts) checks expiry against, so that the suite does not start failing
# on that day; tests about expiry pass their own --as-of / as_of.
os.environ["NETGUARD_AS_OF"] = "2026-06-01"


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
