"""The BDD backend: CUDD through ``dd.cudd``, or dd's pure-Python ``dd.autoref`` without CUDD.

Both backends share one API (``dd._abc``); this module loads whichever is available and gives
the engine a small typed surface over it. Dynamic variable reordering is switched off: the
variable order is chosen once (see ``netguard.space.engine``) and node identity then stays
canonical, so two sets are equal exactly when their root nodes are.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class Node(Protocol):
    """A BDD root (``dd.cudd.Function`` or ``dd.autoref.Function``)."""

    def __and__(self, other: Node, /) -> Node: ...

    def __or__(self, other: Node, /) -> Node: ...

    def __invert__(self) -> Node: ...

    def __eq__(self, other: object, /) -> bool: ...

    def __hash__(self) -> int: ...

    @property
    def var(self) -> str | None: ...

    @property
    def dag_size(self) -> int: ...

    @property
    def negated(self) -> bool: ...

    @property
    def low(self) -> Node: ...

    @property
    def high(self) -> Node: ...


def _load_backend() -> tuple[Any, str]:
    try:
        return importlib.import_module("dd.cudd"), "cudd"
    except ImportError:  # pragma: no cover - the wheel ships CUDD on the platforms we use
        return importlib.import_module("dd.autoref"), "autoref"


_BACKEND, BACKEND_NAME = _load_backend()

# dd.cudd's manager asserts, when it is deallocated, that no node is referenced any more. The
# cyclic garbage collector may clear a manager's `Function` wrappers (dropping their reference
# to the manager) before it deallocates them, so a manager collected together with its
# functions (say, an engine referenced from a traceback) reports "Still N nodes referenced
# upon shutdown" as an unraisable exception. To keep the order right, every manager is also
# held here; a manager is released, at the next manager creation, only once nothing but this
# list refers to it, i.e. once every one of its functions is gone.
_MANAGERS: list[Any] = []


def _release_unused() -> None:
    kept: list[Any] = []
    while _MANAGERS:
        bdd = _MANAGERS.pop()
        # References: the local name and getrefcount's argument; more means still in use.
        if sys.getrefcount(bdd) > 2:
            kept.append(bdd)
        del bdd
    _MANAGERS.extend(kept)


class Manager:
    """One BDD manager with a fixed variable order (declaration order, top first)."""

    def __init__(self, variables: Sequence[str]) -> None:
        _release_unused()
        self._bdd: Any = _BACKEND.BDD()
        _MANAGERS.append(self._bdd)
        self._bdd.configure(reordering=False)
        self._bdd.declare(*variables)
        self.variables: tuple[str, ...] = tuple(variables)
        self.level: dict[str, int] = {v: i for i, v in enumerate(self.variables)}
        self.true: Node = self._bdd.true
        self.false: Node = self._bdd.false

    def var(self, name: str) -> Node:
        """The function that is true when variable ``name`` is 1."""
        node: Node = self._bdd.var(name)
        return node

    def cube(self, assignment: Mapping[str, bool]) -> Node:
        """Conjunction of literals; the empty assignment is TRUE."""
        if not assignment:
            return self.true
        node: Node = self._bdd.cube(dict(assignment))
        return node

    def let(self, assignment: Mapping[str, bool], u: Node) -> Node:
        """Cofactor: substitute constants for variables."""
        node: Node = self._bdd.let(dict(assignment), u)
        return node

    def forall(self, names: Iterable[str], u: Node) -> Node:
        """Universal quantification over ``names``."""
        node: Node = self._bdd.forall(set(names), u)
        return node

    def support(self, u: Node) -> set[str]:
        """Variables ``u`` depends on."""
        names: set[str] = self._bdd.support(u)
        return names

    def top_level(self, u: Node) -> int:
        """Level of the root variable of ``u`` (the number of variables for a constant).

        The children of a node (``low``, ``high``) are those of its regular (uncomplemented)
        node; ``negated`` tells whether an edge is complemented (both backends)."""
        name = u.var
        return len(self.variables) if name is None else self.level[name]
