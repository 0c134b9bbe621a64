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
    assert "-D OUTPUT -d 198.51.100.0/24 -p tcp" in fix.stdout
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
