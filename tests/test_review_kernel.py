"""``netguard snapshot`` / ``netguard diff`` on rules read from the real kernel (tests/netns.py).

The customer namespace of a :class:`netns.NetnsPair` gets a realistic host firewall
(iptables-restore and ipset restore, below). Snapshots are taken with
``netguard snapshot --source local --netns NS`` (iptables-save, ip6tables-save, ipset save and
nft -j list ruleset run inside the namespace) at three moments:

- S0: the baseline;
- S1: after two edits made with ``iptables`` that change nothing the kernel does: the two DNS
  rules swapped (disjoint matches, so the order is irrelevant) and the webhook rule's comment
  edited;
- S2: after three edits that do change it: a port opened (INPUT accepts TCP 9443 from the
  webhook range 203.0.113.0/28 to 192.0.2.10), a CIDR widened (the vendor API rule
  198.51.100.0/25 becomes /24) and a member added to the ipset ``webhook-extra``
  (203.0.113.32/28) that an INPUT rule matches as source for TCP 8443.

Expected by hand (hooks of the IPv4 filter table; ESTABLISHED/RELATED packets were already
accepted by the conntrack rules and loopback by the ``lo`` rules, so what changes is the other
states on other interfaces):

- S0 -> S1: exit 0, one rule moved (OUTPUT), one rule modified (comment), nothing newly
  permitted or denied anywhere;
- S1 -> S2: exit 1; INPUT newly permits TCP from 203.0.113.0/28 to 192.0.2.10 port 9443 and
  TCP from 203.0.113.32/28 to 192.0.2.10 port 8443; OUTPUT newly permits TCP to
  198.51.100.128/25 port 443; nothing newly denied; FORWARD unchanged; the ipset has one member
  added, one rule added, one modified.

The kernel is the independent oracle for the semantic verdicts: before S2 the connections
203.0.113.5 -> 192.0.2.10:9443, 203.0.113.40 -> 192.0.2.10:8443 and
192.0.2.10 -> 198.51.100.130:443 time out, after S2 they connect, and the example packets the
diff gives lie in the hand-reasoned ranges (checked with ``ipaddress``).
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from click.testing import CliRunner
from netns import CONNECTED, TIMEOUT, Attempt, NetnsPair

from netguard.cli import main
from netguard.space import Packet

pytestmark = pytest.mark.kernel

TOOLS = ("iptables", "iptables-save", "ip6tables-save", "iptables-restore", "ipset", "nft")

RULES_V4 = """\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 203.0.113.0/28 -d 192.0.2.10/32 -p tcp -m tcp --dport 8443 -m comment --comment "webhooks" -j ACCEPT
-A INPUT -d 192.0.2.10/32 -p tcp -m set --match-set webhook-extra src -m tcp --dport 8443 -j ACCEPT
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -d 198.51.100.0/25 -p tcp -m tcp --dport 443 -m comment --comment "vendor api" -j ACCEPT
-A OUTPUT -d 192.0.2.53/32 -p udp -m udp --dport 53 -j ACCEPT
-A OUTPUT -d 192.0.2.53/32 -p tcp -m tcp --dport 53 -j ACCEPT
COMMIT
"""  # noqa: E501
IPSET = """\
create webhook-extra hash:net family inet hashsize 1024 maxelem 65536
add webhook-extra 203.0.113.64/28
"""


def _cli(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def pair(kernel: None) -> Iterator[NetnsPair]:
    """The namespaces, with listeners for the three flows the changes open."""
    netns.require_kernel(TOOLS)
    with NetnsPair() as p:
        p.vendor.listen([netns.IPV4.api, netns.IPV4.api_b], [443])
        p.customer.listen([netns.IPV4.customer], [8443, 9443])
        yield p


FLOWS = [
    # (side, attempt): the connections the S1 -> S2 changes open.
    ("vendor", Attempt("192.0.2.10", 9443, "203.0.113.5")),  # port opened
    ("vendor", Attempt("192.0.2.10", 8443, "203.0.113.40")),  # set member added
    ("customer", Attempt("198.51.100.130", 443, "192.0.2.10")),  # CIDR widened
]


def _probe(pair: NetnsPair) -> list[str]:
    sides = {"customer": pair.customer, "vendor": pair.vendor}
    return netns.probe([(sides[s], a) for s, a in FLOWS])


@pytest.fixture(scope="module")
def snapshots(pair: NetnsPair, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """S0, S1, S2 in one store, and the kernel's verdicts on :data:`FLOWS` at S1 and S2."""
    tmp = tmp_path_factory.mktemp("review-kernel")
    store = tmp / "store"
    ns = pair.customer
    netns.reset_firewall(ns)
    (tmp / "ipset").write_text(IPSET)
    (tmp / "rules.v4").write_text(RULES_V4)
    ns.run(["ipset", "restore"], stdin=tmp / "ipset")
    ns.run(["iptables-restore"], stdin=tmp / "rules.v4")
    out: dict[str, Any] = {"store": store}

    def ipt(args: str) -> None:
        ns.run(["iptables", *shlex.split(args)])

    def snap(name: str) -> None:
        result = _cli("snapshot", "--source", "local", "--netns", ns.name, "-o", store)
        assert result.exit_code == 0, result.stderr
        out[name] = Path(result.stdout.strip())

    snap("s0")
    # No semantic change: swap the DNS rules (4 and 5 of OUTPUT), edit the webhook comment.
    ipt("-D OUTPUT 4")
    ipt("-A OUTPUT -d 192.0.2.53/32 -p udp -m udp --dport 53 -j ACCEPT")
    ipt(
        "-R INPUT 3 -s 203.0.113.0/28 -d 192.0.2.10/32 -p tcp -m tcp --dport 8443 "
        "-m comment --comment 'webhooks (ticket NET-42)' -j ACCEPT"
    )
    snap("s1")
    out["kernel_s1"] = _probe(pair)
    # Semantic changes: a port opened, a CIDR widened, a set member added.
    ipt("-A INPUT -s 203.0.113.0/28 -d 192.0.2.10/32 -p tcp -m tcp --dport 9443 -j ACCEPT")
    ipt(
        "-R OUTPUT 3 -d 198.51.100.0/24 -p tcp -m tcp --dport 443 "
        "-m comment --comment 'vendor api' -j ACCEPT"
    )
    ns.run(["ipset", "add", "webhook-extra", "203.0.113.32/28"])
    snap("s2")
    out["kernel_s2"] = _probe(pair)
    netns.reset_firewall(ns)
    return out


def _diff(tmp: Path, old: Path, new: Path) -> tuple[int, dict[str, Any]]:
    report = tmp / f"{old.stem}-{new.stem}.json"
    result = _cli("diff", old, new, "--format", "json", "-o", report)
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(report.read_text())


def _hook(doc: dict[str, Any], hook: str) -> dict[str, Any] | None:
    found = [h for h in doc["semantic"]["hooks"] if h["hook"] == hook]
    assert len(found) <= 1
    return found[0] if found else None


def test_snapshot_records_the_commands_run_in_the_namespace(snapshots: dict[str, Any]) -> None:
    doc = json.loads(snapshots["s0"].read_text())
    argv = [c["argv"] for c in doc["manifest"]["commands"]]
    ns_prefix = argv[0][:4]
    assert ns_prefix[:3] == ["ip", "netns", "exec"]
    assert [a[4:] for a in argv] == [
        ["iptables-save"],
        ["ip6tables-save"],
        ["ipset", "save"],
        ["nft", "-j", "list", "ruleset"],
    ]
    formats = {p["name"]: p["format"] for p in doc["manifest"]["parts"]}
    assert formats == {
        "iptables-save.v4": "iptables-save",
        "ip6tables-save.v6": "iptables-save",  # empty: no IPv6 rules here
        "ipset-save": "ipset",
        "nft-ruleset.json": "nft-json",
    }
    parts = doc["parts"]
    assert parts["ip6tables-save.v6"].strip() == ""
    assert "-A INPUT -s 203.0.113.0/28 -d 192.0.2.10/32" in parts["iptables-save.v4"]
    assert "add webhook-extra 203.0.113.64/28" in parts["ipset-save"]
    assert doc["manifest"]["taken_at"].endswith("Z")


def test_reorder_and_comment_edit_are_structural_only(
    snapshots: dict[str, Any], tmp_path: Path
) -> None:
    code, doc = _diff(tmp_path, snapshots["s0"], snapshots["s1"])
    assert code == 0
    assert doc["summary"]["semantic_change"] is False
    assert doc["semantic"]["hooks"] == []
    assert sorted(doc["semantic"]["unchanged"]) == [
        "iptables IPv4 forward",
        "iptables IPv4 input",
        "iptables IPv4 output",
    ]
    (pair_doc,) = doc["structural"]["rulesets"]
    kinds = sorted((r["kind"], r["chain"], r["detail"]) for r in pair_doc["rules"])
    # One of the two DNS rules moved (which one is the aligner's choice); the comment edit.
    assert len(kinds) == 2
    assert kinds[0][:2] == ("modified", "INPUT") and kinds[0][2] == "comment"
    assert kinds[1][:2] == ("moved", "OUTPUT")
    moved = next(r for r in pair_doc["rules"] if r["kind"] == "moved")
    assert "--dport 53" in moved["new"]["text"]
    assert doc["structural"]["sets"] == []
    # iptables-nft: the same rules in nft's view were left out, and a note says so.
    assert any("iptables-nft" in n for n in doc["notes"])


def _in(addr: str, net: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(net)


def test_port_opened_cidr_widened_set_member_added(
    snapshots: dict[str, Any], tmp_path: Path
) -> None:
    # The kernel agrees these flows were blocked at S1 and pass at S2.
    assert snapshots["kernel_s1"] == [TIMEOUT, TIMEOUT, TIMEOUT]
    assert snapshots["kernel_s2"] == [CONNECTED, CONNECTED, CONNECTED]
    code, doc = _diff(tmp_path, snapshots["s1"], snapshots["s2"])
    assert code == 1
    assert doc["summary"]["semantic_change"] is True
    assert doc["summary"]["newly_denied"] == 0
    assert "iptables IPv4 forward" in doc["semantic"]["unchanged"]

    inp = _hook(doc, "input")
    assert inp is not None and inp["denied"] == []
    examples = [Packet.parse(f["example"]) for f in inp["permitted"]]
    # Two groups: 9443 from the webhook range, 8443 from the added set member.
    by_port = {p.dport: (p, f) for p, f in zip(examples, inp["permitted"], strict=True)}
    assert sorted(by_port) == [8443, 9443]
    p9443, f9443 = by_port[9443]
    assert p9443.protocol == 6 and str(p9443.dst) == "192.0.2.10"
    assert _in(str(p9443.src), "203.0.113.0/28")
    assert p9443.in_interface != "lo"
    assert p9443.ct_state.value in ("NEW", "INVALID", "UNTRACKED")
    assert f9443["old_rules"] == ["INPUT policy DROP [iptables-save.v4:3]"]
    assert f9443["new_rules"][0].startswith("INPUT rule 5: -A INPUT -s 203.0.113.0/28")
    p8443, f8443 = by_port[8443]
    assert _in(str(p8443.src), "203.0.113.32/28") and str(p8443.dst) == "192.0.2.10"
    assert f8443["new_rules"][0].startswith("INPUT rule 4: -A INPUT -d 192.0.2.10/32")
    # Not ESTABLISHED/RELATED (accepted before) and not from lo (accepted before).
    rest = "state NEW,INVALID,UNTRACKED in other"
    assert f9443["space"] == f"ipv4 tcp src 203.0.113.0/28 dst 192.0.2.10/32 dport 9443 {rest}"
    assert f8443["space"] == f"ipv4 tcp src 203.0.113.32/28 dst 192.0.2.10/32 dport 8443 {rest}"

    out = _hook(doc, "output")
    assert out is not None and out["denied"] == []
    (widened,) = out["permitted"]
    assert widened["space"] == (
        "ipv4 tcp dst 198.51.100.128/25 dport 443 state NEW,INVALID,UNTRACKED out other"
    )
    packet = Packet.parse(widened["example"])
    assert _in(str(packet.dst), "198.51.100.128/25") and packet.dport == 443
    # iptables-save prints "# Generated by", "*filter", ":INPUT", ":FORWARD", ":OUTPUT" first.
    assert widened["old_rules"] == ["OUTPUT policy DROP [iptables-save.v4:5]"]
    assert widened["new_rules"][0].startswith("OUTPUT rule 3: -A OUTPUT -d 198.51.100.0/24")

    (pair_doc,) = doc["structural"]["rulesets"]
    kinds = sorted((r["kind"], r["chain"]) for r in pair_doc["rules"])
    assert kinds == [("added", "INPUT"), ("modified", "OUTPUT")]
    modified = next(r for r in pair_doc["rules"] if r["kind"] == "modified")
    assert "198.51.100.0/25" in modified["old"]["text"]
    assert "198.51.100.0/24" in modified["new"]["text"]
    (affected,) = pair_doc["set_affected_rules"]
    assert "--match-set webhook-extra src" in affected["new"]["text"]
    (set_change,) = doc["structural"]["sets"]
    assert set_change["kind"] == "members" and set_change["old_title"] == "webhook-extra"
    assert set_change["added"] == ["203.0.113.32/28"] and set_change["removed"] == []


def test_diff_accepts_the_store_as_newest(snapshots: dict[str, Any], tmp_path: Path) -> None:
    code, doc = _diff(tmp_path, snapshots["s2"], snapshots["store"])
    assert code == 0
    assert doc["new"]["label"] == snapshots["s2"].name
    assert doc["structural"]["rulesets"] == [] and doc["semantic"]["hooks"] == []


def _review_local(pair: NetnsPair, since: Path, tmp: Path) -> tuple[Any, dict[str, Any]]:
    netns.reset_firewall(pair.customer)
    report = tmp / "review.json"
    example = Path(__file__).resolve().parents[1] / "examples" / "public-https" / "deployment.yaml"
    result = _cli(
        "review", example, "--since", since, "--netns", pair.customer.name,
        "--format", "json", "-o", report,
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    return result, json.loads(report.read_text())


def test_review_until_local_snapshots_the_namespace_now(
    pair: NetnsPair, snapshots: dict[str, Any], tmp_path: Path
) -> None:
    # With no rules at all every hook accepts everything, so against S2 (policies DROP)
    # every IPv4 hook newly permits and nothing is newly denied.
    result, doc = _review_local(pair, snapshots["s2"], tmp_path)
    assert "--until local: took a fresh snapshot of netns" in result.stderr
    assert doc["new"]["source"] == "local" and doc["new"]["path"] is None
    hooks = {(h["family"], h["hook"]): h for h in doc["semantic"]["hooks"]}
    assert set(hooks) == {(4, "input"), (4, "output"), (4, "forward")}
    assert all(h["denied"] == [] and h["permitted"] for h in hooks.values())
    # The filter table is gone: iptables-save prints nothing, so S2's iptables rule set is
    # compared with no rules, and every chain of it is reported removed.
    (pair_doc,) = doc["structural"]["rulesets"]
    assert pair_doc["ruleset"] == "iptables IPv4"
    assert {c["kind"] for c in pair_doc["chains"]} == {"removed"}


def test_review_of_an_empty_firewall_is_not_compliant(
    pair: NetnsPair, snapshots: dict[str, Any], tmp_path: Path
) -> None:
    result, doc = _review_local(pair, snapshots["s2"], tmp_path)
    assert doc["summary"]["compliant"] is False
    assert result.exit_code == 1


NFT_RULES = """\
table inet ngfw {
  set vendor {
    type ipv4_addr
    flags interval
    elements = { 198.51.100.0/25 }
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
  }
  chain output {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr @vendor tcp dport 443 accept comment "vendor api"
  }
}
"""


def test_nftables_set_element_added(pair: NetnsPair, tmp_path: Path) -> None:
    """nft -j list ruleset read back from the kernel: an element added to a named set opens
    TCP 443 to 198.51.100.128/26 (not ESTABLISHED/RELATED, not to lo), nothing else."""
    ns = pair.customer
    netns.reset_firewall(ns)
    (tmp_path / "fw.nft").write_text(NFT_RULES)
    ns.run(["nft", "-f", str(tmp_path / "fw.nft")])
    store = tmp_path / "store"
    args = ("snapshot", "--source", "local", "--netns", ns.name, "-o", store)
    first = _cli(*args)
    assert first.exit_code == 0, first.stderr
    attempt = [(ns, Attempt(netns.IPV4.api_b, 443, netns.IPV4.customer))]  # 198.51.100.130
    before = netns.probe(attempt)
    ns.run(["nft", "add", "element", "inet", "ngfw", "vendor", "{ 198.51.100.128/26 }"])
    after = netns.probe(attempt)
    second = _cli(*args)
    assert second.exit_code == 0, second.stderr
    netns.reset_firewall(ns)
    assert (before, after) == ([TIMEOUT], [CONNECTED])
    code, doc = _diff(tmp_path, Path(first.stdout.strip()), Path(second.stdout.strip()))
    assert code == 1
    (change,) = doc["structural"]["sets"]
    assert (change["set_kind"], change["old_title"]) == ("nft-set", "inet ngfw vendor")
    assert len(change["added"]) == 1 and "198.51.100.128" in change["added"][0]
    (hook,) = doc["semantic"]["hooks"]
    assert (hook["family"], hook["hook"], hook["denied"]) == (4, "output", [])
    (flow,) = hook["permitted"]
    assert flow["space"] == (
        "ipv4 tcp dst 198.51.100.128/26 dport 443 state NEW,INVALID,UNTRACKED out other"
    )
    packet = Packet.parse(flow["example"])
    assert _in(str(packet.dst), "198.51.100.128/26") and packet.dport == 443
    assert flow["old_rules"][0].startswith("inet ngfw/output policy DROP")
    assert flow["new_rules"][0].startswith("inet ngfw/output rule 3: ip daddr @vendor")


def test_mangle_drop_is_never_called_unchanged(pair: NetnsPair, tmp_path: Path) -> None:
    """A DROP added to the mangle table, which netguard does not analyse, blocks TCP 443 to
    198.51.100.130 (the kernel says so: CONNECTED before, TIMEOUT after) while the filter
    table is untouched. The diff lists the mangle table once (iptables-nft shows it in the
    nft dump too) and exits 1, "not proven", never "UNCHANGED (proven)"."""
    ns = pair.customer
    netns.reset_firewall(ns)
    (tmp_path / "rules.v4").write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    )
    ns.run(["iptables-restore"], stdin=tmp_path / "rules.v4")
    store = tmp_path / "store"
    args = ("snapshot", "--source", "local", "--netns", ns.name, "-o", store)
    first = _cli(*args)
    assert first.exit_code == 0, first.stderr
    attempt = [(ns, Attempt(netns.IPV4.api_b, 443, netns.IPV4.customer))]  # 198.51.100.130
    before = netns.probe(attempt)
    ns.run(["iptables", "-t", "mangle", "-A", "OUTPUT", "-d", "198.51.100.128/25", "-j", "DROP"])
    after = netns.probe(attempt)
    second = _cli(*args)
    assert second.exit_code == 0, second.stderr
    netns.reset_firewall(ns)
    assert (before, after) == ([CONNECTED], [TIMEOUT])
    code, doc = _diff(tmp_path, Path(first.stdout.strip()), Path(second.stdout.strip()))
    assert code == 1
    assert doc["structural"]["unanalysed"] == ["iptables table mangle added (not analysed)"]
    assert doc["summary"]["proven_unchanged"] is False
