"""Where bundled templates and base profiles live, installed or in a source checkout.

A wheel carries them as ``netguard/_data/{templates,profiles}`` (pyproject ``force-include``);
a source checkout or editable install has them at the repository's top level.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Directory of bundled ``templates`` or ``profiles``.

    Raises ``FileNotFoundError`` when neither the installed nor the source location exists,
    which means a broken installation.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"netguard installation is missing its {name}/ directory")
