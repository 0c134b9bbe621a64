"""``netguard drift --fix`` proven on the real kernel packet filter.

In a network namespace made by the test (ip-netns(8)), rules and sets are loaded with
``ipset restore`` / ``iptables-restore`` / ``nft -f``, read back with ``ipset save`` /
``iptables-save`` / ``nft -j list ruleset``, and compared with examples/public-https (vendor API
198.51.100.0/25 and 198.51.100.128/26 on TCP 443; IPv6 2001:db8:100::/48). The drift found is
the one reasoned by hand in each test; the change printed by ``--fix`` is applied with the
kernel's own tools, the configuration is read back again, and drift must then report none.

Gate: tests/netns.py (root and ``ip netns``; under CI=true a missing tool fails the test).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from click.testing import CliRunner, Result

from netguard.cli import main

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "public-https" / "deployment.yaml"


def sh(ns: str, *argv: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def ns() -> Iterator[str]:
    netns.require_kernel(("ipset", "nft", "iptables-restore", "iptables-save"))
    name = f"ngk-{os.getpid()}-drift"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=30)


def drift(*args: object) -> Result:
    return CliRunner().invoke(main, ["drift", *(str(a) for a in args)])


def egress(result: Result, family: int) -> dict[str, Any]:
    doc = json.loads(result.stdout)
    (c,) = [x for x in doc["comparisons"] if x["direction"] == "egress" and x["family"] == family]
    return c


IPSET = """\
create api hash:net family inet hashsize 64 maxelem 1024
add api 198.51.100.0/25
add api 198.51.100.128/27
add api 203.0.113.0/24
"""
RULES_SET = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -m set --match-set api dst -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def save_iptables(ns: str, tmp: Path, tag: str) -> list[str]:
    v4 = tmp / f"{tag}.v4"
    v4.write_text(sh(ns, "iptables-save"))
    sets = tmp / f"{tag}.ipset"
    sets.write_text(sh(ns, "ipset", "save"))
    return ["--actual", str(v4), "--actual", str(sets)]


def test_ipset_fix_applied_in_the_kernel_leaves_no_drift(ns: str, tmp_path: Path) -> None:
    sh(ns, "ipset", "restore", "-exist", stdin=IPSET)
    sh(ns, "iptables-restore", stdin=RULES_SET)
    before = drift(EXAMPLE, *save_iptables(ns, tmp_path, "before"), "--direction", "egress",
                   "--format", "json")  # fmt: skip
    assert before.exit_code == 1, before.stderr
    c = egress(before, 4)
    # Allowed: .0/25, .128/27 and 203.0.113.0/24. Desired: .0/25 + .128/26 (.0 - .191).
    assert c["extra"]["prefixes"] == ["203.0.113.0/24"]
    assert c["missing"]["prefixes"] == ["198.51.100.160/27"]
    fix = drift(EXAMPLE, *save_iptables(ns, tmp_path, "fix"), "--direction", "egress",
                "--fix", "ipset")  # fmt: skip
    assert fix.exit_code == 1, fix.stderr
    lines = [x for x in fix.stdout.splitlines() if not x.startswith("#")]
    assert lines == ["add api 198.51.100.160/27", "del api 203.0.113.0/24"]
    sh(ns, "ipset", "restore", "-exist", stdin=fix.stdout)
    after = drift(EXAMPLE, *save_iptables(ns, tmp_path, "after"), "--direction", "egress",
                  "--format", "json")  # fmt: skip
    assert after.exit_code == 0, after.stdout
    assert egress(after, 4)["drift"] is False


RULES_PLAIN = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -o lo -j ACCEPT
-A OUTPUT -d 198.51.100.0/24 -p tcp -m tcp --dport 443 -m conntrack --ctstate NEW -j ACCEPT
-A OUTPUT -d 203.0.113.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""


def test_iptables_rule_fix_applied_in_the_kernel_leaves_no_drift(ns: str, tmp_path: Path) -> None:
    sh(ns, "iptables-restore", stdin=RULES_PLAIN)
    sh(ns, "ipset", "destroy")
    v4 = tmp_path / "before.v4"
    v4.write_text(sh(ns, "iptables-save"))
    before = drift(EXAMPLE, "--actual", v4, "--direction", "egress", "--format", "json")
    c = egress(before, 4)
    # The /24 on 443 is wider than .0 - .191: EXTRA .192/26; port 22 does not count.
    assert c["extra"]["prefixes"] == ["198.51.100.192/26"]
    assert c["missing"]["prefixes"] == []
    fix = drift(EXAMPLE, "--actual", v4, "--direction", "egress", "--fix", "iptables")
    assert fix.exit_code == 1, fix.stderr
    # The /24 rule is rule 2 of OUTPUT (after the loopback rule): deleted by number.
    assert "\n-D OUTPUT 2\n" in fix.stdout
    sh(ns, "iptables-restore", "--noflush", stdin=fix.stdout)
    after_v4 = tmp_path / "after.v4"
    after_v4.write_text(sh(ns, "iptables-save"))
    after = drift(EXAMPLE, "--actual", after_v4, "--direction", "egress", "--format", "json")
    assert after.exit_code == 0, after.stdout
    # The port-22 rule is untouched.
    assert "-A OUTPUT -d 203.0.113.0/24 -p tcp -m tcp --dport 22 -j ACCEPT" in after_v4.read_text()


NFT = """\
table inet ngdrift {
  set api4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/25, 203.0.113.0/24 } }
  set api6 { type ipv6_addr; flags interval; elements = { 2001:db8:100::/48 } }
  chain out {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ip daddr @api4 tcp dport 443 ct state new accept
    ip6 daddr @api6 tcp dport 443 ct state new accept
  }
}
"""


def test_nft_fix_applied_in_the_kernel_leaves_no_drift(ns: str, tmp_path: Path) -> None:
    sh(ns, "nft", "flush", "ruleset")
    sh(ns, "nft", "-f", "-", stdin=NFT)

    def dump(tag: str) -> Path:
        path = tmp_path / f"{tag}.json"
        path.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
        return path

    before = drift(EXAMPLE, "--actual", dump("before"), "--direction", "egress",
                   "--format", "json")  # fmt: skip
    assert before.exit_code == 1, before.stderr
    c4 = egress(before, 4)
    assert c4["extra"]["prefixes"] == ["203.0.113.0/24"]
    assert c4["missing"]["prefixes"] == ["198.51.100.128/26"]
    assert egress(before, 6)["drift"] is False
    fix = drift(EXAMPLE, "--actual", dump("fix"), "--direction", "egress", "--fix", "nft")
    assert fix.exit_code == 1, fix.stderr
    lines = [x for x in fix.stdout.splitlines() if not x.startswith("#")]
    assert lines == [
        "delete element inet ngdrift api4 { 203.0.113.0/24 }",
        "add element inet ngdrift api4 { 198.51.100.128/26 }",
    ]
    sh(ns, "nft", "-f", "-", stdin=fix.stdout)
    after = drift(EXAMPLE, "--actual", dump("after"), "--direction", "egress",
                  "--format", "json")  # fmt: skip
    assert after.exit_code == 0, after.stdout


HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n"
TCP443 = "-p tcp -m tcp --dport 443 -j ACCEPT"

# Each case: OUTPUT rules, and the drift reasoned by hand against the example's egress list
# (198.51.100.0/25 + 198.51.100.128/26 = .0 - .191, 192 addresses, TCP 443).
FIX_CASES = {
    # Two rules to replace in one chain, the lower one partly desired: numbers must be right
    # when applied (deleting rule 3 first shifts rule 5; an insert past the end is refused).
    "two-in-one-chain": (
        [
            "-A OUTPUT -o lo -j ACCEPT",
            f"-A OUTPUT -d 198.51.100.0/25 {TCP443}",
            f"-A OUTPUT -d 203.0.113.0/24 {TCP443}",
            "-A OUTPUT -d 192.0.2.53/32 -p tcp -m tcp --dport 53 -j ACCEPT",
            f"-A OUTPUT -d 198.51.100.128/25 {TCP443}",
        ],
        ["198.51.100.192/26", "203.0.113.0/24"],
        [],
    ),
    # A rule without an address allows every destination on 443: EXTRA is everything but the
    # 192 desired addresses; its desired part must be put back, not lost with it.
    "no-address": (
        ["-A OUTPUT -o lo -j ACCEPT", f"-A OUTPUT {TCP443}"],
        None,
        [],
    ),
    # The missing .128/26 is rejected by rule 1: adding it below rule 1 would change nothing.
    "missing-behind-reject": (
        [
            "-A OUTPUT -d 198.51.100.128/25 -j REJECT --reject-with icmp-port-unreachable",
            f"-A OUTPUT -d 198.51.100.0/25 {TCP443}",
            f"-A OUTPUT -d 203.0.113.0/24 {TCP443}",
        ],
        ["203.0.113.0/24"],
        ["198.51.100.128/26"],
    ),
    # An identical copy takes over when only the first is deleted.
    "duplicate-rule": (
        [f"-A OUTPUT -d 198.51.100.0/24 {TCP443}", f"-A OUTPUT -d 198.51.100.0/24 {TCP443}"],
        ["198.51.100.192/26"],
        [],
    ),
    # The /24 rule is shadowed by the /23: once the /23 is deleted it accepts .192/26 again,
    # so it must be replaced too (found by evaluating the rules without the deleted ones).
    "shadowed": (
        [
            f"-A OUTPUT -d 198.51.100.0/23 {TCP443}",
            f"-A OUTPUT -d 203.0.113.0/24 {TCP443}",
            f"-A OUTPUT -d 198.51.100.0/24 {TCP443}",
        ],
        ["198.51.100.192/26", "198.51.101.0/24", "203.0.113.0/24"],
        [],
    ),
    # A negated destination: iptables takes one -d per rule, so the desired part replaces it.
    "negated": (
        [f"-A OUTPUT ! -d 203.0.113.0/24 {TCP443}"],
        None,
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(FIX_CASES))
def test_iptables_fix_positions_and_placement(ns: str, tmp_path: Path, case: str) -> None:
    rules, extra, missing = FIX_CASES[case]
    sh(ns, "iptables-restore", stdin=HEAD + "\n".join(rules) + "\nCOMMIT\n")
    v4 = tmp_path / "before.v4"
    v4.write_text(sh(ns, "iptables-save"))
    before = drift(EXAMPLE, "--actual", v4, "--direction", "egress", "--format", "json")
    assert before.exit_code == 1, before.stderr
    c = egress(before, 4)
    if extra is not None:
        assert c["extra"]["prefixes"] == extra
    else:
        # Everything on 443 but the desired 192 (and, negated, 203.0.113.0/24's 256).
        excluded = 192 + (256 if case == "negated" else 0)
        assert c["extra"]["addresses"] == 2**32 - excluded
    assert c["missing"]["prefixes"] == missing
    fix = drift(EXAMPLE, "--actual", v4, "--direction", "egress", "--fix", "iptables")
    assert fix.exit_code == 1, fix.stderr
    sh(ns, "iptables-restore", "--noflush", stdin=fix.stdout)
    after_v4 = tmp_path / "after.v4"
    after_v4.write_text(sh(ns, "iptables-save"))
    after = drift(EXAMPLE, "--actual", after_v4, "--direction", "egress", "--format", "json")
    assert after.exit_code == 0, fix.stdout + after.stdout
    text = after_v4.read_text()
    # Rules outside the flow stay.
    for rule in rules:
        if "--dport 443" not in rule:
            assert rule in text


NFT_TWO_SETS = """\
table inet ngdrift {
  set dns4 { type ipv4_addr; flags interval; elements = { 192.0.2.53 } }
  set api4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }
  set api6 { type ipv6_addr; flags interval; elements = { 2001:db8:100::/48 } }
  chain out {
    type filter hook output priority 0; policy drop;
    ip daddr @dns4 tcp dport 53 accept
    ip daddr @api4 tcp dport 443 ct state new accept
    ip6 daddr @api6 tcp dport 443 ct state new accept
  }
}
"""


def test_nft_fix_picks_the_set_of_the_flow(ns: str, tmp_path: Path) -> None:
    # dns4 is looked up only by the port-53 rule: it is not the list of the 443 flow, so the
    # change goes to api4 without --set (as on netguard's own nft output, which has a DNS set).
    sh(ns, "nft", "flush", "ruleset")
    sh(ns, "nft", "-f", "-", stdin=NFT_TWO_SETS)
    dump = tmp_path / "before.json"
    dump.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
    fix = drift(EXAMPLE, "--actual", dump, "--direction", "egress", "--fix", "nft")
    assert fix.exit_code == 1, fix.stderr
    lines = [x for x in fix.stdout.splitlines() if not x.startswith("#")]
    # api4 holds .0/24; desired .0 - .191: the /24 goes, .0/25 and .128/26 come in.
    assert lines == [
        "delete element inet ngdrift api4 { 198.51.100.0/24 }",
        "add element inet ngdrift api4 { 198.51.100.0/25, 198.51.100.128/26 }",
    ]
    sh(ns, "nft", "-f", "-", stdin=fix.stdout)
    after = tmp_path / "after.json"
    after.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
    res = drift(EXAMPLE, "--actual", after, "--direction", "egress", "--format", "json")
    assert res.exit_code == 0, res.stdout


NFT_SAME_NAME = """\
table ip ngdrift {
  set allow { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }
  chain out {
    type filter hook output priority 0; policy drop;
    ip daddr @allow tcp dport 443 accept
  }
}
table ip6 ngdrift {
  set allow { type ipv6_addr; flags interval; elements = { 2001:db8:100::/48 } }
  chain out {
    type filter hook output priority 0; policy drop;
    ip6 daddr @allow tcp dport 443 accept
  }
}
"""


def test_nft_fix_tells_same_named_sets_of_two_tables_apart(ns: str, tmp_path: Path) -> None:
    # Both tables have a set "allow"; the IPv4 rule looks up the one of table ip ngdrift.
    sh(ns, "nft", "flush", "ruleset")
    sh(ns, "nft", "-f", "-", stdin=NFT_SAME_NAME)
    dump = tmp_path / "before.json"
    dump.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
    fix = drift(EXAMPLE, "--actual", dump, "--direction", "egress", "--fix", "nft")
    assert fix.exit_code == 1, fix.stderr
    # IPv4: the /24 goes, .0/25 and .128/26 come in; IPv6 already equals 2001:db8:100::/48.
    assert [x for x in fix.stdout.splitlines() if not x.startswith("#")] == [
        "delete element ip ngdrift allow { 198.51.100.0/24 }",
        "add element ip ngdrift allow { 198.51.100.0/25, 198.51.100.128/26 }",
    ]
    sh(ns, "nft", "-f", "-", stdin=fix.stdout)
    after = tmp_path / "after.json"
    after.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
    res = drift(EXAMPLE, "--actual", after, "--direction", "egress", "--format", "json")
    assert res.exit_code == 0, res.stdout


NFT_LITERAL = """\
table inet ngdrift {
  set api4 { type ipv4_addr; flags interval; elements = { 198.51.100.0/25, 198.51.100.128/26 } }
  set api6 { type ipv6_addr; flags interval; elements = { 2001:db8:100::/48 } }
  chain out {
    type filter hook output priority 0; policy drop;
    ip daddr @api4 tcp dport 443 accept
    ip6 daddr @api6 tcp dport 443 accept
    ip daddr 203.0.113.0/24 tcp dport 443 accept
  }
}
"""


def test_nft_fix_refuses_extra_outside_the_set(ns: str, tmp_path: Path) -> None:
    # The set is exactly the desired list; 203.0.113.0/24 is EXTRA through a rule with its own
    # address. Before: an empty change (nothing to delete from the set), exit 1.
    sh(ns, "nft", "flush", "ruleset")
    sh(ns, "nft", "-f", "-", stdin=NFT_LITERAL)
    dump = tmp_path / "before.json"
    dump.write_text(sh(ns, "nft", "-j", "list", "ruleset"))
    fix = drift(EXAMPLE, "--actual", dump, "--direction", "egress", "--fix", "nft")
    assert fix.exit_code == 2, fix.stdout
    assert "203.0.113.0/24" in fix.stderr
    assert "ip daddr 203.0.113.0/24" in fix.stderr


RULES_SET_AND_PLAIN = """\
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -m set --match-set api dst -p tcp -m tcp --dport 443 -j ACCEPT
-A OUTPUT -d 192.0.2.0/24 -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
"""


def test_extra_outside_the_set_ipset_refuses_iptables_fixes(ns: str, tmp_path: Path) -> None:
    # The set (IPSET: .0/25, .128/27, 203.0.113.0/24) and a plain rule for 192.0.2.0/24 both
    # allow EXTRA. Changing the set alone would leave 192.0.2.0/24: --fix ipset refuses (it
    # printed a comment before); --fix iptables rewrites the rules and leaves no drift.
    sh(ns, "ipset", "restore", "-exist", stdin=IPSET)
    sh(ns, "iptables-restore", stdin=RULES_SET_AND_PLAIN)
    args = save_iptables(ns, tmp_path, "before")
    res = drift(EXAMPLE, *args, "--direction", "egress", "--fix", "ipset")
    assert res.exit_code == 2, res.stdout
    assert "192.0.2.0/24" in res.stderr
    fix = drift(EXAMPLE, *args, "--direction", "egress", "--fix", "iptables")
    assert fix.exit_code == 1, fix.stderr
    sh(ns, "iptables-restore", "--noflush", stdin=fix.stdout)
    after = drift(EXAMPLE, *save_iptables(ns, tmp_path, "after"), "--direction", "egress",
                  "--format", "json")  # fmt: skip
    assert after.exit_code == 0, fix.stdout + after.stdout


def _random_rules(rnd: random.Random) -> list[str]:
    """A few OUTPUT / user-chain rules mixing ACCEPT, DROP and REJECT, ports 443, 22 and
    400-500, negations and rules without an address, over prefixes around the desired list."""
    prefixes = [
        "198.51.100.0/24", "198.51.100.0/25", "198.51.100.128/25", "198.51.100.128/26",
        "198.51.100.192/26", "198.51.100.64/26", "198.51.101.0/24", "198.51.100.0/23",
        "203.0.113.0/24", "192.0.2.0/24", "198.51.100.5/32",
    ]  # fmt: skip
    rules = ["-A OUTPUT -j ng"]
    for _ in range(rnd.randint(1, 6)):
        port = rnd.choice(["--dport 443", "--dport 443", "--dport 22", "--dport 400:500", ""])
        proto = f"-p tcp -m tcp {port}" if port else "-p tcp"
        action = rnd.choice(["ACCEPT", "ACCEPT", "ACCEPT", "DROP", "REJECT"])
        addr = "" if rnd.random() < 0.1 else f"{'! ' if rnd.random() < 0.1 else ''}-d "
        addr += rnd.choice(prefixes) + " " if addr else ""
        rules.append(f"-A {rnd.choice(['OUTPUT', 'OUTPUT', 'ng'])} {addr}{proto} -j {action}")
    rnd.shuffle(rules)
    return rules


@pytest.mark.parametrize("seed", range(12))
def test_iptables_fix_on_random_rules_leaves_no_drift(ns: str, tmp_path: Path, seed: int) -> None:
    # Whatever the rules, the printed change, applied by iptables-restore --noflush, must
    # leave no drift (the kernel's rules read back with iptables-save), or be refused.
    rules = _random_rules(random.Random(seed))
    head = HEAD.replace(":OUTPUT DROP [0:0]\n", ":OUTPUT DROP [0:0]\n:ng - [0:0]\n")
    sh(ns, "iptables-restore", stdin=head + "\n".join(rules) + "\nCOMMIT\n")
    v4 = tmp_path / "before.v4"
    v4.write_text(sh(ns, "iptables-save"))
    fix = drift(EXAMPLE, "--actual", v4, "--direction", "egress", "--fix", "iptables")
    assert fix.exit_code in (0, 1, 2), fix.stderr
    if fix.exit_code == 2:
        assert "cannot remove it" in fix.stderr
        return
    sh(ns, "iptables-restore", "--noflush", stdin=fix.stdout)
    after = tmp_path / "after.v4"
    after.write_text(sh(ns, "iptables-save"))
    res = drift(EXAMPLE, "--actual", after, "--direction", "egress", "--format", "json")
    assert res.exit_code == 0, "\n".join(rules) + "\n" + fix.stdout
