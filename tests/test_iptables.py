"""iptables target: structure, stability, fail-closed families, and the real loader."""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from netguard.compile import compile_policy
from netguard.model.policy import Policy
from netguard.profiles import load_deployment
from netguard.render import Target, render_targets

ROOT = Path(__file__).resolve().parents[1]


def _policy(text: str, tmp_path: Path) -> Policy:
    path = tmp_path / "deployment.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_policy(load_deployment(path).profile)


def _render(policy: Policy) -> dict[str, str]:
    return render_targets(policy, [Target.IPTABLES])


BASE = """\
extends: public-https
name: t
families: [{families}]
vendor:
  endpoints: [{{name: api, host: api.vendor.example}}]
  api_ranges: [{api}]
  webhook_ranges: [203.0.113.0/28]
customer:
  egress_addresses: [192.0.2.1/32]
  webhook_receivers: [{{name: hooks, addresses: [192.0.2.2/32], ports: [{ports}]}}]
iptables: {{ipset_threshold: {threshold}}}
"""


def _text(
    tmp_path: Path,
    api: str = "198.51.100.0/25",
    ports: str = "8443",
    families: str = "ipv4, ipv6",
    threshold: int = 16,
) -> dict[str, str]:
    profile = BASE.format(api=api, ports=ports, families=families, threshold=threshold)
    return _render(_policy(profile, tmp_path))


def _rules(text: str) -> list[str]:
    """The permit rules: lines of the ng-egress and ng-ingress chains."""
    return [
        line for line in text.splitlines() if line.startswith(("-A ng-egress", "-A ng-ingress"))
    ]


def test_one_prefix_change_is_one_line_diff(tmp_path: Path) -> None:
    before = _text(tmp_path, api="198.51.100.0/26, 198.51.100.128/26, 2001:db8:100::/48")
    after = _text(tmp_path, api="198.51.100.0/26, 198.51.100.192/26, 2001:db8:100::/48")
    for name in before:
        diff = [
            line
            for line in difflib.unified_diff(
                before[name].splitlines(), after[name].splitlines(), lineterm="", n=0
            )
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        if name.endswith("rules.v4"):
            assert diff == [
                "-"
                "-A ng-egress -d 198.51.100.128/26 -p tcp -m tcp --dport 443 -m conntrack "
                '--ctstate NEW -m comment --comment "egress-vendor-api" -j ACCEPT',
                "+"
                "-A ng-egress -d 198.51.100.192/26 -p tcp -m tcp --dport 443 -m conntrack "
                '--ctstate NEW -m comment --comment "egress-vendor-api" -j ACCEPT',
            ]
        else:
            assert diff == [], name


def test_ipv6_without_prefixes_gets_no_rule_never_any(tmp_path: Path) -> None:
    files = _text(tmp_path, api="198.51.100.0/25")  # no IPv6 vendor range
    v6 = _rules(files["iptables/rules.v6"])
    # The receiver has no IPv6 address either, so IPv6 has no permit rule at all.
    assert v6 == []
    assert ":OUTPUT DROP [0:0]" in files["iptables/rules.v6"]
    assert "-A OUTPUT -j ng-drop" in files["iptables/rules.v6"]


def test_family_left_out_is_denied_not_open(tmp_path: Path) -> None:
    files = _text(tmp_path, api="198.51.100.0/25, 2001:db8:100::/48", families="ipv4")
    text = files["iptables/rules.v6"]
    assert _rules(text) == []
    assert "ESTABLISHED" not in text  # nothing but loopback
    assert [line for line in text.splitlines() if line.endswith("-j ACCEPT")] == [
        '-A INPUT -i lo -m comment --comment "netguard:loopback" -j ACCEPT',
        '-A OUTPUT -o lo -m comment --comment "netguard:loopback" -j ACCEPT',
    ]


def test_multiport_splits_at_fifteen_ports(tmp_path: Path) -> None:
    # 16 single ports and one range (weight 2): 18 > 15, so two multiport rules.
    ports = ", ".join(str(p) for p in range(9000, 9032, 2))  # 16 non-adjacent ports
    files = _text(tmp_path, ports=ports)
    webhook = [r for r in _rules(files["iptables/rules.v4"]) if "ingress-webhook" in r]
    assert len(webhook) == 2
    first = ",".join(str(p) for p in range(9000, 9030, 2))  # 15 ports
    assert f"-m multiport --dports {first} " in webhook[0]
    assert "-m multiport --dports 9030 " in webhook[1]


def test_adjacent_ports_become_a_range(tmp_path: Path) -> None:
    files = _text(tmp_path, ports="8443, 8444, 8445, 9443")
    [webhook] = [r for r in _rules(files["iptables/rules.v4"]) if "ingress-webhook" in r]
    assert "-m multiport --dports 8443:8445,9443 " in webhook


def test_long_lists_use_ipset_sized_to_fit(tmp_path: Path) -> None:
    # 40 non-adjacent /32s (every other address): no aggregation possible.
    api = ", ".join(f"198.51.100.{i}/32" for i in range(0, 80, 2))
    files = _text(tmp_path, api=api, threshold=16)
    v4 = _rules(files["iptables/rules.v4"])
    api_rules = [r for r in v4 if "egress-vendor-api" in r]
    assert api_rules == [
        "-A ng-egress -p tcp -m set --match-set ng4-vendor-api dst -m tcp --dport 443 "
        '-m conntrack --ctstate NEW -m comment --comment "egress-vendor-api" -j ACCEPT'
    ]
    ipset = files["iptables/ipset.restore"].splitlines()
    assert "create ng4-vendor-api hash:net family inet hashsize 1024 maxelem 1048576" in ipset
    adds = [line for line in ipset if line.startswith("add ng4t-vendor-api ")]
    assert adds == [f"add ng4t-vendor-api 198.51.100.{i}/32" for i in range(0, 80, 2)]
    assert "swap ng4t-vendor-api ng4-vendor-api" in ipset
    assert "uses_ipset" not in files["iptables/rules.v4"]
    assert (
        "# Load: ipset restore -exist < ipset.restore && iptables-restore"
        in files["iptables/rules.v4"]
    )


def test_ipset_maxelem_is_the_same_for_every_list_size() -> None:
    # `ipset restore -exist` refuses to re-create a live set with another maxelem, so a list that
    # grows (10 -> 70,000 -> 1,000,000) must keep the same maxelem to stay reloadable.
    from netguard.render.iptables import IPSET_MAXELEM, _pow2_at_least

    assert IPSET_MAXELEM == 1_048_576
    assert {max(IPSET_MAXELEM, _pow2_at_least(n)) for n in (10, 65_537, 1_000_000)} == {1_048_576}
    assert max(IPSET_MAXELEM, _pow2_at_least(1_048_577)) == 2_097_152


def test_vpn_matches_tunnel_by_ipsec_policy() -> None:
    loaded = load_deployment(ROOT / "examples" / "vpn" / "deployment.yaml")
    v4 = _rules(_render(compile_policy(loaded.profile))["iptables/rules.v4"])
    api = [r for r in v4 if "egress-vendor-api" in r]
    assert api and all("-m policy --dir out --pol ipsec" in r for r in api)
    webhook = [r for r in v4 if "ingress-webhook" in r]
    assert webhook and all("-m policy --dir in --pol ipsec" in r for r in webhook)
    esp = [r for r in v4 if '"egress-esp"' in r]
    assert esp == [
        "-A ng-egress -d 203.0.113.200/31 -p esp -m conntrack --ctstate NEW "
        '-m comment --comment "egress-esp" -j ACCEPT'
    ]
    ike = [r for r in v4 if "-ike" in r]
    assert ike == [
        "-A ng-egress -d 203.0.113.200/31 -p udp -m udp --dport 500 -m conntrack --ctstate NEW "
        '-m comment --comment "egress-ike" -j ACCEPT',
        "-A ng-ingress -s 203.0.113.200/31 -p udp -m udp --dport 500 -m conntrack --ctstate NEW "
        '-m comment --comment "ingress-ike" -j ACCEPT',
    ]


def test_privatelink_egress_only_to_endpoint_subnets() -> None:
    loaded = load_deployment(ROOT / "examples" / "privatelink" / "deployment.yaml")
    v4 = _rules(_render(compile_policy(loaded.profile))["iptables/rules.v4"])
    assert [r.split()[3] for r in v4 if "-p tcp -m tcp --dport 443" in r] == ["192.0.2.64/27"]


# --- the real loader ---------------------------------------------------------------------


def _need_root() -> None:
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root for a network namespace"
    elif not shutil.which("ip") or not shutil.which("iptables-restore"):
        reason = "needs iproute2 and iptables"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot run under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[str]:
    _need_root()
    name = f"ngt-ipt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["public-https", "vpn", "privatelink"])
@pytest.mark.parametrize("threshold", [1, 16])
def test_real_loader_accepts_every_mode(
    netns: str, tmp_path: Path, mode: str, threshold: int
) -> None:
    loaded = load_deployment(ROOT / "examples" / mode / "deployment.yaml")
    profile = loaded.profile.model_copy(
        update={
            "iptables": loaded.profile.iptables.model_copy(update={"ipset_threshold": threshold})
        }
    )
    files = _render(compile_policy(profile))
    for name, text in files.items():
        (tmp_path / Path(name).name).write_text(text)

    def run(*argv: str, stdin: str) -> None:
        with (tmp_path / stdin).open() as fh:
            done = subprocess.run(
                ["ip", "netns", "exec", netns, *argv], stdin=fh, capture_output=True, text=True
            )
        assert done.returncode == 0, done.stderr

    run("ipset", "restore", "-exist", stdin="ipset.restore")
    run("iptables-restore", stdin="rules.v4")
    run("ip6tables-restore", stdin="rules.v6")
    run("ipset", "restore", "-exist", stdin="ipset.restore")  # reload: swap in place
    run("iptables-restore", stdin="rules.v4")
    saved = subprocess.run(
        ["ip", "netns", "exec", netns, "iptables-save", "-t", "filter"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ":INPUT DROP" in saved and ":OUTPUT DROP" in saved and ":FORWARD DROP" in saved
    assert len(_rules(saved)) == len(_rules(files["iptables/rules.v4"]))


def _v6_list(count: int) -> str:
    """``count`` non-adjacent /64s in 2001:db8::/32 (every other /64: nothing aggregates)."""
    return ", ".join(f"2001:db8:{(2 * i) >> 16:x}:{(2 * i) & 0xFFFF:x}::/64" for i in range(count))


def _load(netns: str, text: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], input=text, capture_output=True, text=True
    )


def _members(netns: str, name: str) -> set[str]:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "ipset", "list", name],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.split("Members:\n", 1)[1].splitlines()
    return {line.strip() for line in lines if line.strip()}


@pytest.mark.kernel
def test_ipset_reload_after_list_grows_past_old_limits(netns: str, tmp_path: Path) -> None:
    small = _text(tmp_path, api=_v6_list(20), threshold=16)["iptables/ipset.restore"]
    assert _load(netns, small, "ipset", "restore", "-exist").returncode == 0
    big = _text(tmp_path, api=_v6_list(70_000), threshold=16)["iptables/ipset.restore"]
    assert "hashsize 32768" in big  # 70,000 / 4 rounded up to a power of two; loaded: 1024
    done = _load(netns, big, "ipset", "restore", "-exist")
    assert done.returncode == 0, done.stderr
    members = _members(netns, "ng6-vendor-api")
    assert len(members) == 70_000
    assert "2001:db8:2:22de::/64" in members  # the 70,000th: i = 69,999, 2i = 0x2_22de


@pytest.mark.kernel
def test_ipset_failure_while_filling_leaves_live_sets_untouched(netns: str, tmp_path: Path) -> None:
    api4 = "198.51.100.0/32, 198.51.100.2/32, 198.51.100.4/32"
    first = _text(tmp_path, api=f"{api4}, 2001:db8::/64, 2001:db8:0:2::/64", threshold=1)
    assert (
        _load(netns, first["iptables/ipset.restore"], "ipset", "restore", "-exist").returncode == 0
    )
    before = {n: _members(netns, n) for n in ("ng4-vendor-api", "ng6-vendor-api")}
    assert before["ng4-vendor-api"] == {"198.51.100.0", "198.51.100.2", "198.51.100.4"}
    second = _text(
        tmp_path,
        api="198.51.100.8/32, 198.51.100.10/32, 2001:db8:0:4::/64, 2001:db8:0:6::/64",
        threshold=1,
    )["iptables/ipset.restore"]
    lines = second.splitlines()
    last_add = max(i for i, line in enumerate(lines) if line.startswith("add "))
    lines.insert(last_add + 1, "add ng6t-vendor-api not-an-address")
    done = _load(netns, "\n".join(lines) + "\n", "ipset", "restore", "-exist")
    assert done.returncode != 0
    assert {n: _members(netns, n) for n in before} == before


def test_allowlists_are_the_union_of_the_rules_peers() -> None:
    # Regression: egress-destinations listed only the vendor API, so a perimeter team working
    # from it missed the VPN peers (IKE/ESP), DNS resolvers and exceptions.
    loaded = load_deployment(ROOT / "examples" / "vpn" / "deployment.yaml")
    policy = compile_policy(loaded.profile)
    egress = [str(p) for p in policy.allowlists["egress-destinations"].prefixes.all_prefixes()]
    assert egress == [
        "192.0.2.53/32",
        "198.51.100.0/26",
        "203.0.113.200/31",
        "2001:db8:100:10::/64",
    ]
    inbound = [str(p) for p in policy.allowlists["customer-inbound"].prefixes.all_prefixes()]
    assert inbound == ["198.51.100.64/28", "203.0.113.200/31", "2001:db8:100:20::/64"]
