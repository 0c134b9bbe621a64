"""RuleSet: an ordered firewall configuration as deployed, read from any format.

Vocabulary (iptables(8), nft(8)): a *rule* has a *match* (a conjunction of conditions on the
packet header and connection state) and an *action* (a verdict such as ACCEPT or DROP, a jump to
another chain, or a non-terminating target such as LOG). Rules sit in *chains*; a *base chain* is
attached to a *hook* (input, output, forward) and has a *policy*. A packet is accepted at a hook
only if every base chain on that hook accepts it (nftables; iptables has one per hook).

Readers fill this model; the packet-space engine (``netguard.space``) evaluates it. Conditions a
reader cannot express are kept in ``Match.unmodeled`` with their text, so the engine can treat
them conservatively and reports can name them; nothing is silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from netguard.cidr import PrefixSet
from netguard.errors import Location


class Hook(StrEnum):
    """Netfilter hooks of the filter table that netguard reasons about."""

    INPUT = "input"
    OUTPUT = "output"
    FORWARD = "forward"


class CtState(StrEnum):
    """Connection-tracking states (iptables-extensions(8) conntrack --ctstate)."""

    NEW = "NEW"
    ESTABLISHED = "ESTABLISHED"
    RELATED = "RELATED"
    INVALID = "INVALID"
    UNTRACKED = "UNTRACKED"


# IANA protocol numbers used across readers.
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ESP = 50
PROTO_ICMPV6 = 58


@dataclass(frozen=True)
class AddressMatch:
    """A set of addresses (prefixes, ranges, resolved ipset members) and whether it is negated.

    ``addresses`` holds exact intervals (``PrefixSet``), so ``-m iprange`` ranges fit too.
    """

    addresses: PrefixSet
    negated: bool = False


@dataclass(frozen=True)
class PortMatch:
    """Inclusive port ranges ``((first, last), ...)``, optionally negated."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False


@dataclass(frozen=True)
class IcmpMatch:
    """ICMP/ICMPv6 type and inclusive code range (``type`` None: any type), optionally negated."""

    type: int | None
    code_first: int = 0
    code_last: int = 255
    negated: bool = False


@dataclass(frozen=True)
class InterfaceMatch:
    """Interface name; ``wildcard`` True when iptables' trailing '+' makes it a prefix match."""

    name: str
    wildcard: bool = False
    negated: bool = False


@dataclass(frozen=True)
class Match:
    """A conjunction of conditions; an empty Match matches every packet.

    Each tuple is itself a conjunction (a rule may say ``-s`` and ``-m set --match-set ... src``
    at once). ``protocols`` is a set of IANA numbers (None: any), negated with
    ``protocols_negated``. ``ct_states`` None means any state. ``ipsec`` True/False requires the
    packet to be (not) IPsec-processed (``-m policy --pol ipsec|none``), None means either.
    ``unmodeled`` holds the text of every condition the reader could not model.
    """

    protocols: frozenset[int] | None = None
    protocols_negated: bool = False
    sources: tuple[AddressMatch, ...] = ()
    destinations: tuple[AddressMatch, ...] = ()
    source_ports: tuple[PortMatch, ...] = ()
    destination_ports: tuple[PortMatch, ...] = ()
    icmp: tuple[IcmpMatch, ...] = ()
    ct_states: frozenset[CtState] | None = None
    ct_states_negated: bool = False
    in_interfaces: tuple[InterfaceMatch, ...] = ()
    out_interfaces: tuple[InterfaceMatch, ...] = ()
    ipsec: bool | None = None
    unmodeled: tuple[str, ...] = ()


class ActionKind(StrEnum):
    """What a rule does when it matches."""

    ACCEPT = "ACCEPT"
    DROP = "DROP"
    REJECT = "REJECT"  # terminating deny that answers (ICMP or TCP reset)
    RETURN = "RETURN"
    JUMP = "JUMP"
    GOTO = "GOTO"
    LOG = "LOG"  # non-terminating
    CONTINUE = "CONTINUE"  # no target, counters only, or another non-terminating target
    UNMODELED = "UNMODELED"  # a terminating target the engine cannot model (e.g. QUEUE)


@dataclass(frozen=True)
class Action:
    """A rule's action; ``chain`` names the target chain of JUMP and GOTO; ``text`` as written."""

    kind: ActionKind
    chain: str | None = None
    text: str = ""

    @property
    def terminating(self) -> bool:
        """True when a match ends evaluation in this chain (ACCEPT, DROP, REJECT, RETURN, GOTO)."""
        return self.kind in (
            ActionKind.ACCEPT,
            ActionKind.DROP,
            ActionKind.REJECT,
            ActionKind.RETURN,
            ActionKind.GOTO,
            ActionKind.UNMODELED,
        )


@dataclass(frozen=True)
class Rule:
    """One rule: where it is (chain, 1-based position, file:line), what it matches and does."""

    chain: str
    position: int
    match: Match
    action: Action
    text: str
    location: Location
    comment: str | None = None


@dataclass(frozen=True)
class Chain:
    """A chain; base chains have a ``hook`` and a ``policy`` (ACCEPT or DROP)."""

    name: str
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None
    policy: ActionKind | None = None
    priority: int = 0
    location: Location | None = None


@dataclass(frozen=True)
class Note:
    """Something a reader saw and could not model, or ignored on purpose, with its location."""

    location: Location
    message: str


@dataclass(frozen=True)
class RuleSet:
    """The filter rules of one address family (4 or 6) as deployed.

    ``chains`` maps names to chains (base and user); for each hook, the base chains are those
    with that ``hook``, evaluated in ``priority`` order, and a packet must be accepted by all.
    ``notes`` lists what the reader could not model (other tables, unknown matches).
    """

    family: int
    chains: dict[str, Chain]
    source: str
    notes: tuple[Note, ...] = field(default=())

    def base_chains(self, hook: Hook) -> tuple[Chain, ...]:
        """Base chains attached to ``hook``, lowest priority first."""
        return tuple(
            sorted(
                (c for c in self.chains.values() if c.hook == hook),
                key=lambda c: (c.priority, c.name),
            )
        )
