"""Control characters out of report text.

Rule texts, comments and file names come from the configurations checked: a comment such as
``"\\x1b[2K\\rCOMPLIANT"`` would, printed raw, rewrite the terminal line that reports the
finding, and a C0 character makes an XML document not well-formed (XML 1.0, section 2.2
"Characters"). :func:`printable` writes each such character as a visible escape.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls (tab and newline too: each report line is one line), DEL, C1 controls, the
# line and paragraph separators, and the code points XML 1.0 excludes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character (C0 including tab and newline, DEL, C1, U+2028,
    U+2029, surrogates, U+FFFE, U+FFFF) written as ``\\xNN`` or ``\\uNNNN``; other text,
    backslashes included, unchanged."""
    return _CONTROL.sub(_escape, text)
