"""The exact packet-space engine: header spaces as BDDs (``dd`` with CUDD), rule set
evaluation with first-match and chain-call semantics, readable example packets and rectangle
descriptions, and the concrete path of one packet.

Entry points: :class:`Engine` (builds :class:`HeaderSpace` sets), :func:`evaluate` (a rule
set at a hook -> :class:`Evaluation`), :func:`trace` (one :class:`Packet` -> steps).
"""

from netguard.space.engine import (
    BACKEND_NAME,
    CT_CODES,
    FIELD_ORDER,
    Approx,
    Engine,
    HeaderSpace,
    InterfaceUniverse,
    UnmodeledError,
)
from netguard.space.evaluate import (
    POLICY,
    Evaluation,
    RuleKey,
    Shadowing,
    Slicer,
    TraceStep,
    evaluate,
    match_packet,
    trace,
)
from netguard.space.packet import PORT_PROTOCOLS, PROTOCOL_NAMES, Packet, protocol_name
from netguard.space.rectangles import Rectangle, Rectangles

__all__ = [
    "BACKEND_NAME",
    "CT_CODES",
    "FIELD_ORDER",
    "POLICY",
    "PORT_PROTOCOLS",
    "PROTOCOL_NAMES",
    "Approx",
    "Engine",
    "Evaluation",
    "HeaderSpace",
    "InterfaceUniverse",
    "Packet",
    "Rectangle",
    "Rectangles",
    "RuleKey",
    "Shadowing",
    "Slicer",
    "TraceStep",
    "UnmodeledError",
    "evaluate",
    "match_packet",
    "protocol_name",
    "trace",
]
