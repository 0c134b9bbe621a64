"""Security-group quota arithmetic: pack weighted rule entries into as few groups as fit.

This module knows nothing about policies or output formats; it only counts. The numbers and
the way each entry counts come from the Amazon VPC User Guide:

- "Amazon VPC quotas", section *Security groups*: "Inbound or outbound rules per security
  group" (default 60) is enforced separately for inbound and outbound rules and separately for
  IPv4 and IPv6 rules; "Security groups per network interface" (default 5, up to 16); the rules
  quota multiplied by the groups-per-interface quota cannot exceed 1,000.
- "Security group rules", section *Security group size*: a rule that references a CIDR block
  counts as one rule; a rule that references another security group counts as one rule; a rule
  that references a customer-managed prefix list counts as the prefix list's maximum entries.
- "Amazon VPC quotas", section *Customer-managed prefix lists*: at most 1,000 entries.

A *dimension* is one of the four independent counters of a group: ``(direction, family)``,
e.g. ``("egress", 4)``. An :class:`Item` weighs something in one or more dimensions; a group
(a *bin*) holds items while every dimension stays within ``rules_per_group``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netguard.errors import RenderError

Dimension = tuple[str, int]
"""``(direction, family)``: ``("ingress" | "egress", 4 | 6)``."""

PREFIX_LIST_MAX_ENTRIES = 1000
"""Maximum entries of one customer-managed prefix list (Amazon VPC quotas)."""

QUOTA_DOC = "Amazon VPC User Guide, 'Amazon VPC quotas', Security groups"


@dataclass(frozen=True)
class SgQuotas:
    """The account's security-group quotas (``policy.aws``).

    ``max_groups`` is how many groups one network interface can take given both quotas: at
    most ``groups_per_interface``, and at most ``max_rules_times_groups // rules_per_group``
    (AWS refuses quota settings whose product exceeds 1,000).
    """

    rules_per_group: int
    groups_per_interface: int
    max_rules_times_groups: int

    @property
    def max_groups(self) -> int:
        """Groups that may attach to one network interface under these quotas."""
        return min(self.groups_per_interface, self.max_rules_times_groups // self.rules_per_group)

    def describe(self) -> str:
        """The quota settings, as named in the profile, for error messages."""
        return (
            f"aws.quotas: rules_per_group {self.rules_per_group}, groups_per_interface "
            f"{self.groups_per_interface}, max_rules_times_groups {self.max_rules_times_groups}"
        )


@dataclass(frozen=True)
class Item:
    """One rule entry to place in a group.

    ``weights`` maps each dimension the entry counts in to how much it counts (1 for a CIDR or a
    group reference, the max-entries for a prefix-list reference). ``source`` names what the
    entry came from for error messages (an address list and family, a prefix list, a group
    reference); ``what`` says how it counts (``"CIDR"``, ``"prefix list"``, ``"group reference"``).
    """

    weights: tuple[tuple[Dimension, int], ...]
    source: str
    what: str = "CIDR"

    @property
    def heaviest(self) -> int:
        """The largest weight of the item in any dimension."""
        return max((w for _, w in self.weights), default=0)


def dimension_name(dim: Dimension) -> str:
    """``("egress", 4)`` -> ``"egress IPv4"``."""
    return f"{dim[0]} IPv{dim[1]}"


def _contributions(items: Sequence[Item], dim: Dimension) -> str:
    """The largest contributors to one dimension, for an error message."""
    by_source: dict[str, int] = {}
    for item in items:
        for d, w in item.weights:
            if d == dim:
                by_source[item.source] = by_source.get(item.source, 0) + w
    ranked = sorted(by_source.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name}: {count} rules" for name, count in ranked[:3])


def pack(items: Sequence[Item], quotas: SgQuotas, role: str) -> list[list[int]]:
    """Place every item in a group; return the groups as lists of item indexes, in item order.

    Deterministic first-fit decreasing: items are taken heaviest first (ties keep their given
    order, so equal-weight CIDR entries fill groups in policy order) and each goes into the
    first group with room in every dimension it counts in. The same input gives the same
    groups.

    Raises :class:`RenderError`, naming the role, the list, its size and the quota, when the
    quotas allow no group at all, when one item alone is heavier than a group may hold (a
    prefix list larger than ``rules_per_group``), or when the items need more than
    ``quotas.max_groups`` groups.
    """
    limit = quotas.rules_per_group
    max_groups = quotas.max_groups
    if max_groups < 1:
        raise RenderError(
            f"aws: rules_per_group {limit} times one group already exceeds "
            f"max_rules_times_groups {quotas.max_rules_times_groups}: no security group can "
            f"be attached to a network interface ({QUOTA_DOC})"
        )
    for item in items:
        for dim, weight in item.weights:
            if weight > limit:
                raise RenderError(
                    f"aws: {item.source}: a rule that references it counts its max-entries "
                    f"{weight} as {weight} {dimension_name(dim)} rules, more than the {limit} a "
                    f"security group may hold ({quotas.describe()}; {QUOTA_DOC}; 'Security "
                    "group size'). Raise rules_per_group, shorten the list, or set "
                    "aws.prefix_lists: false so that its CIDRs are split across groups"
                )
    totals: dict[Dimension, int] = {}
    for item in items:
        for dim, weight in item.weights:
            totals[dim] = totals.get(dim, 0) + weight
    capacity = max_groups * limit
    for dim in sorted(totals):
        if totals[dim] > capacity:
            raise RenderError(
                f"aws: the {role} security groups need {totals[dim]} {dimension_name(dim)} "
                f"rules, but {max_groups} groups per network interface of {limit} rules hold at "
                f"most {capacity} ({quotas.describe()}; {QUOTA_DOC}; each CIDR x port range x "
                f"protocol is one rule). Largest address lists: {_contributions(items, dim)}"
            )
    order = sorted(range(len(items)), key=lambda i: -items[i].heaviest)
    bins: list[dict[Dimension, int]] = []
    members: list[list[int]] = []
    for index in order:
        item = items[index]
        fits = (
            b
            for b, used in enumerate(bins)
            if all(used.get(dim, 0) + w <= limit for dim, w in item.weights)
        )
        target = next(fits, None)
        if target is None:
            bins.append({})
            members.append([])
            target = len(bins) - 1
        for dim, w in item.weights:
            bins[target][dim] = bins[target].get(dim, 0) + w
        members[target].append(index)
    if len(members) > max_groups:
        worst = max(totals, key=lambda d: (totals[d], d))
        raise RenderError(
            f"aws: the {role} rules need {len(members)} security groups, more than the "
            f"{max_groups} that may attach to one network interface ({quotas.describe()}; "
            f"{QUOTA_DOC}). Largest address lists ({dimension_name(worst)}): "
            f"{_contributions(items, worst)}"
        )
    return [sorted(m) for m in members]
