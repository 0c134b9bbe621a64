"""Readers: deployed firewall configurations into :class:`~netguard.model.ruleset.RuleSet`.

- :func:`read_iptables_save`: ``iptables-save`` / ``ip6tables-save`` output (or
  ``iptables-restore`` input of the same shape) -> one RuleSet per family dump;
- :func:`read_ipset_save`: ``ipset save`` output or an ``ipset restore`` file -> the sets
  (:class:`IpSetInfo`) that ``-m set --match-set`` resolves against;
- :func:`read_nft_json`: ``nft -j list ruleset`` (libnftables-json(5)) -> one RuleSet per
  family; ip, ip6 and inet filter tables, named, anonymous and interval sets (details in
  :mod:`netguard.readers.nft_json`);
- :func:`read_security_groups` / :func:`read_security_groups_live`: AWS security groups
  (describe-security-groups JSON, or live through boto3) -> one RuleSet per family; prefix
  lists and group references resolved through describe-managed-prefix-lists/entries and
  describe-network-interfaces, otherwise kept as unmodeled conditions.

Modeled exactly in :class:`~netguard.model.ruleset.Match` by the iptables reader:
``-p`` (names, numbers, ``all``, ``!``), ``-s``/``-d`` (``!`` before or after the option,
comma lists, ``/len`` and contiguous ``/mask``), ``-i``/``-o`` (``+`` wildcard, ``!``),
``--sport``/``--dport`` of tcp, udp, sctp and dccp (``p``, ``a:b``, ``:b``, ``a:``, ``!``),
multiport ``--sports``/``--dports`` and ``! --ports``, conntrack ``--ctstate`` and state
``--state`` (``!``; several are intersected), ``-m iprange``, ``-m icmp``/``-m icmp6`` types
(numbers, ``type/code``, names), ``-m set --match-set NAME src|dst`` of ``hash:ip``,
``hash:net`` and ``bitmap:ip`` sets, ``-m policy --dir D --pol ipsec|none`` (as
``Match.ipsec`` where the chain's hooks imply the direction), ``-m comment`` (as
``Rule.comment``). Targets ACCEPT, DROP, REJECT, RETURN, LOG, jumps (``-j chain``) and
gotos (``-g chain``).

Kept as ``Match.unmodeled`` text (the engine treats them conservatively): ``-f``, tcp
``--tcp-flags``/``--syn``/``--tcp-option``, multiport ``--ports`` without ``!`` (source OR
destination port), conntrack options other than ``--ctstate`` and states SNAT/DNAT,
``--match-set`` with several direction flags, of an unmodeled set type, of an unknown set,
or with ``--return-nomatch`` / counter conditions, ``-m policy`` details (``--strict``,
``--reqid``, ``--spi``, ``--proto``, ``--mode``, ``--tunnel-*``, ``--next``) and ``-m policy``
in chains reached from FORWARD, address masks that are not contiguous, and every other
match (``limit``, ``hashlimit``, ``hl``, ``ttl``, ``length``, ``mark``, ``addrtype``,
``recent``, ``owner``, ...). Non-terminating targets (MARK, CONNMARK, CT, NFLOG, TRACE, ...)
become CONTINUE; QUEUE, NFQUEUE, SYNPROXY, NAT targets and unknown upper-case targets become
UNMODELED.
"""

from __future__ import annotations

from netguard.readers.aws_sg import AwsApiError, read_security_groups, read_security_groups_live
from netguard.readers.ipset import IpSetInfo, read_ipset_save
from netguard.readers.iptables_save import read_iptables_save
from netguard.readers.nft_json import read_nft_json

__all__ = [
    "AwsApiError",
    "IpSetInfo",
    "read_ipset_save",
    "read_iptables_save",
    "read_nft_json",
    "read_security_groups",
    "read_security_groups_live",
]
