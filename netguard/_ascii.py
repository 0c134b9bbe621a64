"""ASCII-only character tests for parsing configuration text.

``str.isdigit()`` and ``int()`` also accept the digits of other scripts ("٤٤٣") and
superscripts ("²"); the tools whose files netguard reads (iptables, nft, ipset, AWS) do not,
so netguard's readers must not either: a file they would refuse must not read as something.
"""

from __future__ import annotations

__all__ = ["is_digits"]


def is_digits(text: str) -> bool:
    """True when ``text`` is non-empty and every character is one of ``0``-``9``."""
    return text.isascii() and text.isdigit()
