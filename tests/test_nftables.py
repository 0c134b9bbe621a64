"""nftables target: render each example, load it into the real kernel, read it back as JSON.

The kernel tests create a network namespace per test (``ngtest-nft-<pid>-<n>``, deleted in the
fixture's teardown), check the file with ``nft -c -f``, load it twice with ``nft -f`` and compare
``nft -j list ruleset`` with values reasoned out by hand from the example deployments (aggregated
prefixes, rule order from netguard/compile.py, families per rule). No test sends any packet.
Without root they skip locally and fail under CI (``CI=true``), see :func:`require_kernel`.

Every address is from the documentation ranges (RFC 5737, RFC 3849).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import io
import ipaddress
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.cidr import PrefixSet
from netguard.compile import compile_policy
from netguard.errors import RenderError, TemplateSafetyError
from netguard.generate import GenerateOptions, run_generate
from netguard.model.policy import AddressSet, Direction, Policy, PolicyRule, PortRange, Protocol
from netguard.profiles import load_deployment
from netguard.render import Target, render_targets
from netguard.render.nftables import NFT_FILE, set_name

ROOT = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 6, 1)
EXAMPLES = ["public-https", "vpn", "privatelink"]
_NS_COUNTER = itertools.count()


# --- environment ----------------------------------------------------------------------------


def require_kernel(reason_if_missing: str | None = None) -> None:
    """Skip (locally) or fail (CI=true) unless this process can use netns and nft.

    ``reason_if_missing`` forces the missing case with that reason (used when ``ip netns add``
    itself fails). Under CI a kernel test must run, so a missing capability is a failure.
    """
    reason = reason_if_missing
    if reason is None:
        if os.geteuid() != 0:
            reason = "needs root for network namespaces and nft"
        else:
            missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
            if missing:
                reason = f"needs {' and '.join(missing)} on PATH"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"kernel test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh, empty network namespace; always deleted afterwards."""
    require_kernel()
    name = f"ngtest-nft-{os.getpid()}-{next(_NS_COUNTER)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        require_kernel(f"ip netns add failed: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def nft(ns: str, *args: str) -> str:
    """Run ``nft ARGS`` inside ``ns``; fail the test with nft's message on a non-zero exit."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"nft {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def load(ns: str, path: Path) -> list[dict[str, Any]]:
    """Check, load, and read back ``path``: the ruleset objects without metainfo and handles."""
    nft(ns, "-c", "-f", str(path))
    nft(ns, "-f", str(path))
    return ruleset(ns)


def ruleset(ns: str) -> list[dict[str, Any]]:
    """``nft -j list ruleset`` objects, without metainfo and without (per-load) handles."""
    doc = json.loads(nft(ns, "-j", "list", "ruleset"))
    out = []
    for obj in doc["nftables"]:
        if "metainfo" in obj:
            continue
        ((kind, body),) = obj.items()
        out.append({kind: {k: v for k, v in body.items() if k != "handle"}})
    return out


# --- reading the JSON ruleset -------------------------------------------------------------


def tables(rs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(family, name) of every table."""
    return [(o["table"]["family"], o["table"]["name"]) for o in rs if "table" in o]


def sets(rs: list[dict[str, Any]]) -> dict[str, tuple[str, list[str], set[str]]]:
    """netguard set name -> (type, flags, elements as normalized prefixes)."""
    out = {}
    for o in rs:
        s = o.get("set")
        if s is None or s["table"] != "netguard":
            continue
        elements = set()
        for e in s.get("elem", []):
            if isinstance(e, str):
                elements.add(str(ipaddress.ip_network(e)))
            else:
                p = e["prefix"]
                elements.add(str(ipaddress.ip_network(f"{p['addr']}/{p['len']}")))
        out[s["name"]] = (s["type"], s.get("flags", []), elements)
    return out


def chains(rs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """netguard chain name -> chain object."""
    return {
        o["chain"]["name"]: o["chain"]
        for o in rs
        if "chain" in o and o["chain"]["table"] == "netguard"
    }


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "exists" if v else "missing"
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, list):
        return ",".join(_value(x) for x in v)
    if isinstance(v, dict) and "set" in v:
        return "{" + ", ".join(_value(x) for x in v["set"]) + "}"
    if isinstance(v, dict) and "range" in v:
        return f"{v['range'][0]}-{v['range'][1]}"
    raise AssertionError(f"unexpected value {v!r}")


def _expr(e: dict[str, Any]) -> str:
    ((kind, body),) = e.items()
    if kind == "match":
        ((lk, lb),) = body["left"].items()
        # payload: "ip saddr"; meta, ct, rt: "meta iif", "ct state", "rt ipsec"
        left = f"{lb['protocol']} {lb['field']}" if lk == "payload" else f"{lk} {lb['key']}"
        op = "" if body["op"] in ("==", "in") else f"{body['op']} "
        return f"{left} {op}{_value(body['right'])}"
    if kind == "limit":
        return f"limit {body['rate']}/{body['per']} burst {body['burst']}"
    if kind == "log":
        return f"log {body['prefix']!r} level {body.get('level', 'warn')}"
    if kind == "jump":
        return f"jump {body['target']}"
    if kind in ("accept", "drop"):
        return kind
    if kind == "counter":
        return "counter"
    raise AssertionError(f"unexpected expression {e!r}")


def rules(rs: list[dict[str, Any]], chain: str) -> list[tuple[str, list[str]]]:
    """(comment, normalized expressions) of each rule of a netguard chain, in order."""
    return [
        (o["rule"].get("comment", ""), [_expr(e) for e in o["rule"]["expr"]])
        for o in rs
        if "rule" in o and o["rule"]["table"] == "netguard" and o["rule"]["chain"] == chain
    ]


# --- expected chains, by hand ---------------------------------------------------------------

NDP = "icmpv6 type {nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert}"
MLD = (
    "icmpv6 type {mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report}"
)
LOG_DROP = (
    "netguard:log-drop",
    ["limit 10/minute burst 5", "counter", "log 'netguard-drop: ' level warn"],
)
DROP = ("netguard:drop", ["counter", "drop"])


def head(loopback: str, families: str = "both") -> list[tuple[str, list[str]]]:
    """The fixed start of input (``iif``) / output (``oif``) for the enabled families."""
    established = ["ct state established,related", "accept"]
    if families != "both":
        established = [f"meta nfproto {families}", *established]
    out = [
        ("netguard:loopback", [f"meta {loopback} lo", "accept"]),
        ("netguard:established", established),
    ]
    if families in ("both", "ipv6"):
        out.append(("netguard:ndp", [NDP, "ip6 hoplimit 255", "accept"]))
        out.append(("netguard:mld", [MLD, "ip6 hoplimit 1", "accept"]))
    return out


def new(comment: str, *matches: str, verdict: str = "accept") -> tuple[str, list[str]]:
    """A policy rule: its matches, then ``ct state new`` and the verdict."""
    return (comment, [*matches, "ct state new", verdict])


SET_V4 = ("ipv4_addr", ["interval"])
SET_V6 = ("ipv6_addr", ["interval"])

EXPECTED: dict[str, dict[str, Any]] = {
    "public-https": {
        "sets": {
            "vendor_api_v4": (*SET_V4, {"198.51.100.0/25", "198.51.100.128/26"}),
            "vendor_api_v6": (*SET_V6, {"2001:db8:100::/48"}),
            "dns_resolvers_v4": (*SET_V4, {"192.0.2.53/32"}),
            "dns_resolvers_v6": (*SET_V6, {"2001:db8:10::53/128"}),
            "exc_ntp_v4": (*SET_V4, {"192.0.2.123/32"}),  # no IPv6 peer: no _v6 set
            "vendor_webhooks_v4": (*SET_V4, {"203.0.113.0/28"}),
            "vendor_webhooks_v6": (*SET_V6, {"2001:db8:200::/48"}),
            "rcv_ingest_v4": (*SET_V4, {"192.0.2.20/32"}),
            "rcv_ingest_v6": (*SET_V6, {"2001:db8:10::20/128"}),
        },
        "output": [
            new("egress-vendor-api", "ip daddr @vendor_api_v4", "tcp dport 443"),
            new("egress-vendor-api", "ip6 daddr @vendor_api_v6", "tcp dport 443"),
            new("egress-dns-tcp", "ip daddr @dns_resolvers_v4", "tcp dport 53"),
            new("egress-dns-tcp", "ip6 daddr @dns_resolvers_v6", "tcp dport 53"),
            new("egress-dns-udp", "ip daddr @dns_resolvers_v4", "udp dport 53"),
            new("egress-dns-udp", "ip6 daddr @dns_resolvers_v6", "udp dport 53"),
            new("exception-ntp", "ip daddr @exc_ntp_v4", "udp dport 123"),
        ],
        "input": [
            new(
                "ingress-webhook-ingest",
                "ip saddr @vendor_webhooks_v4",
                "ip daddr @rcv_ingest_v4",
                "tcp dport 8443",
            ),
            new(
                "ingress-webhook-ingest",
                "ip6 saddr @vendor_webhooks_v6",
                "ip6 daddr @rcv_ingest_v6",
                "tcp dport 8443",
            ),
        ],
    },
    "vpn": {
        "sets": {
            # 203.0.113.200/32 + 203.0.113.201/32 aggregate to one /31; no IPv6 peer.
            "vpn_peers_v4": (*SET_V4, {"203.0.113.200/31"}),
            "vendor_api_v4": (*SET_V4, {"198.51.100.0/26"}),
            "vendor_api_v6": (*SET_V6, {"2001:db8:100:10::/64"}),
            "dns_resolvers_v4": (*SET_V4, {"192.0.2.53/32"}),
            "vendor_webhooks_v4": (*SET_V4, {"198.51.100.64/28"}),
            "vendor_webhooks_v6": (*SET_V6, {"2001:db8:100:20::/64"}),
            "rcv_ingest_v4": (*SET_V4, {"192.0.2.20/32"}),
            "rcv_ingest_v6": (*SET_V6, {"2001:db8:10::20/128"}),
        },
        "output": [
            new("egress-ike", "ip daddr @vpn_peers_v4", "udp dport 500"),
            new("egress-nat-t", "ip daddr @vpn_peers_v4", "udp dport 4500"),
            new("egress-esp", "ip daddr @vpn_peers_v4", "meta l4proto esp"),
            # inside the tunnel, no tunnel_interface: "will be IPsec-processed"
            new("egress-vendor-api", "rt ipsec exists", "ip daddr @vendor_api_v4", "tcp dport 443"),
            new(
                "egress-vendor-api", "rt ipsec exists", "ip6 daddr @vendor_api_v6", "tcp dport 443"
            ),
            new("egress-dns-tcp", "ip daddr @dns_resolvers_v4", "tcp dport 53"),
            new("egress-dns-udp", "ip daddr @dns_resolvers_v4", "udp dport 53"),
        ],
        "input": [
            new("ingress-ike", "ip saddr @vpn_peers_v4", "udp dport 500"),
            new("ingress-nat-t", "ip saddr @vpn_peers_v4", "udp dport 4500"),
            new("ingress-esp", "ip saddr @vpn_peers_v4", "meta l4proto esp"),
            # "was IPsec-processed"
            new(
                "ingress-webhook-ingest",
                "meta ipsec exists",
                "ip saddr @vendor_webhooks_v4",
                "ip daddr @rcv_ingest_v4",
                "tcp dport 8443",
            ),
            new(
                "ingress-webhook-ingest",
                "meta ipsec exists",
                "ip6 saddr @vendor_webhooks_v6",
                "ip6 daddr @rcv_ingest_v6",
                "tcp dport 8443",
            ),
        ],
    },
    "privatelink": {
        "sets": {
            "vendor_endpoint_v4": (*SET_V4, {"192.0.2.64/27"}),
            "vendor_endpoint_v6": (*SET_V6, {"2001:db8:10:40::/64"}),
            "dns_resolvers_v4": (*SET_V4, {"192.0.2.2/32"}),
            # The receiver has no IPv6 address, so the webhook rule has no IPv6 form and the
            # IPv6 webhook ranges are not needed by any rule.
            "vendor_webhooks_v4": (*SET_V4, {"203.0.113.0/28"}),
            "rcv_ingest_v4": (*SET_V4, {"192.0.2.20/32"}),
        },
        "output": [
            new("egress-vendor-api", "ip daddr @vendor_endpoint_v4", "tcp dport 443"),
            new("egress-vendor-api", "ip6 daddr @vendor_endpoint_v6", "tcp dport 443"),
            new("egress-dns-tcp", "ip daddr @dns_resolvers_v4", "tcp dport 53"),
            new("egress-dns-udp", "ip daddr @dns_resolvers_v4", "udp dport 53"),
        ],
        "input": [
            new(
                "ingress-webhook-ingest",
                "ip saddr @vendor_webhooks_v4",
                "ip daddr @rcv_ingest_v4",
                "tcp dport 8443",
            ),
        ],
    },
}


# --- rendering ------------------------------------------------------------------------------


def policy_of(path: Path) -> Policy:
    """Load and compile a deployment file."""
    return compile_policy(load_deployment(path, as_of=AS_OF).profile)


def example(name: str) -> Policy:
    """The compiled policy of ``examples/<name>``."""
    return policy_of(ROOT / "examples" / name / "deployment.yaml")


def render(policy: Policy, template_dirs: tuple[Path, ...] = ()) -> str:
    """The nftables file of a policy."""
    files = render_targets(policy, [Target.NFTABLES], template_dirs)
    assert list(files) == [NFT_FILE]
    return files[NFT_FILE]


def write(tmp_path: Path, text: str, name: str = "netguard.nft") -> Path:
    """Write rendered text to a file for ``nft -f``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def deployment(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of ``examples/<name>`` with top-level keys replaced (written as YAML)."""
    doc = yaml.safe_load((ROOT / "examples" / name / "deployment.yaml").read_text())
    doc.update(changes)
    path = tmp_path / f"{name}-changed.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def rule_lines(text: str) -> list[str]:
    """Non-comment lines of a rendered file, stripped."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def assert_base_chains(rs: list[dict[str, Any]]) -> None:
    """The three filter base chains exist at priority filter (0) with policy drop."""
    found = chains(rs)
    for name in ("input", "output", "forward"):
        c = found[name]
        assert (c["family"], c["type"], c["hook"], c["prio"], c["policy"]) == (
            "inet",
            "filter",
            name,
            0,
            "drop",
        ), c


# --- kernel tests ---------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_and_reads_back(name: str, netns: str, tmp_path: Path) -> None:
    """Each example: nft -c, load on an empty ruleset, load again; JSON is as reasoned by hand."""
    path = write(tmp_path, render(example(name)))
    first = load(netns, path)  # on an empty ruleset: the table does not exist yet
    second = load(netns, path)  # again: the table exists and is replaced
    assert first == second
    assert tables(second) == [("inet", "netguard")]
    assert_base_chains(second)
    assert set(chains(second)) == {"input", "output", "forward"}
    want = EXPECTED[name]
    assert sets(second) == want["sets"]
    assert rules(second, "output") == head("oif") + want["output"] + [LOG_DROP, DROP]
    assert rules(second, "input") == head("iif") + want["input"] + [LOG_DROP, DROP]
    assert rules(second, "forward") == [LOG_DROP, DROP]


@pytest.mark.kernel
def test_reload_replaces_only_its_own_table(netns: str, tmp_path: Path) -> None:
    """A reload drops everything of the previous load and leaves other tables alone."""
    other = write(
        tmp_path,
        "table inet other {\n\tchain keep {\n\t\tip daddr 192.0.2.1 accept\n\t}\n}\n",
        "other.nft",
    )
    nft(netns, "-f", str(other))
    load(netns, write(tmp_path, render(example("public-https")), "a.nft"))
    rs = load(netns, write(tmp_path, render(example("vpn")), "b.nft"))
    assert sorted(tables(rs)) == [("inet", "netguard"), ("inet", "other")]
    # Nothing of the first load is left: exactly the vpn sets and rules.
    assert sets(rs) == EXPECTED["vpn"]["sets"]
    assert "exc_ntp_v4" not in sets(rs)
    assert rules(rs, "output") == head("oif") + EXPECTED["vpn"]["output"] + [LOG_DROP, DROP]
    keep = [o["rule"] for o in rs if "rule" in o and o["rule"]["table"] == "other"]
    assert len(keep) == 1


@pytest.mark.kernel
def test_ipv4_only_profile_has_no_ipv6_accept(netns: str, tmp_path: Path) -> None:
    """families [ipv4]: no IPv6 set, no IPv6 accept, established limited to IPv4."""
    policy = policy_of(deployment(tmp_path, "public-https", families=["ipv4"]))
    rs = load(netns, write(tmp_path, render(policy)))
    assert_base_chains(rs)
    assert all(t == "ipv4_addr" for t, _, _ in sets(rs).values())
    assert set(sets(rs)) == {
        "vendor_api_v4",
        "dns_resolvers_v4",
        "exc_ntp_v4",
        "vendor_webhooks_v4",
        "rcv_ingest_v4",
    }
    for chain, loopback in (("input", "iif"), ("output", "oif")):
        got = rules(rs, chain)
        assert got[:2] == head(loopback, "ipv4")
        for comment, exprs in got:
            if "accept" in exprs and comment != "netguard:loopback":
                assert not any(e.startswith(("ip6 ", "icmpv6 ")) for e in exprs), exprs
                assert "meta nfproto ipv6" not in exprs
                assert any(e.startswith("ip ") or e == "meta nfproto ipv4" for e in exprs), exprs
    want_out = [r for r in EXPECTED["public-https"]["output"] if r[1][0].startswith("ip ")]
    assert rules(rs, "output") == head("oif", "ipv4") + want_out + [LOG_DROP, DROP]


@pytest.mark.kernel
def test_tunnel_interface_replaces_ipsec_match(netns: str, tmp_path: Path) -> None:
    """With vpn.tunnel_interface, tunnel rules match the interface, not IPsec state."""
    vti = dataclasses.replace(example("vpn"), tunnel_interface="vti0")
    rs = load(netns, write(tmp_path, render(vti)))
    api = [r for r in rules(rs, "output") if r[0] == "egress-vendor-api"]
    hooks = [r for r in rules(rs, "input") if r[0] == "ingress-webhook-ingest"]
    assert api == [
        new("egress-vendor-api", "meta oifname vti0", "ip daddr @vendor_api_v4", "tcp dport 443"),
        new("egress-vendor-api", "meta oifname vti0", "ip6 daddr @vendor_api_v6", "tcp dport 443"),
    ]
    assert [r[1][0] for r in hooks] == ["meta iifname vti0", "meta iifname vti0"]
    everything = [e for c in ("input", "output") for _, exprs in rules(rs, c) for e in exprs]
    assert not any("ipsec" in e for e in everything)


@pytest.mark.kernel
def test_logging_accepted_flows_keeps_accept_verdict(netns: str, tmp_path: Path) -> None:
    """log_accepted: rules jump to log_accept, whose rate limit gates only the log."""
    base = example("public-https")
    policy = dataclasses.replace(base, log=dataclasses.replace(base.log, log_accepted=True))
    rs = load(netns, write(tmp_path, render(policy)))
    assert set(chains(rs)) == {"input", "output", "forward", "log_accept"}
    assert "hook" not in chains(rs)["log_accept"]  # a regular chain, reached by jump only
    expected = [
        (comment, [*exprs[:-1], "jump log_accept"])
        for comment, exprs in EXPECTED["public-https"]["output"]
    ]
    assert rules(rs, "output") == head("oif") + expected + [LOG_DROP, DROP]
    assert rules(rs, "log_accept") == [
        ("netguard:log-accept", ["limit 10/minute burst 5", "log 'netguard-accept: ' level info"]),
        ("netguard:accept", ["accept"]),
    ]


@pytest.mark.kernel
def test_logging_disabled_still_drops(netns: str, tmp_path: Path) -> None:
    """logging disabled: no log rule, the explicit drop stays."""
    base = example("privatelink")
    policy = dataclasses.replace(base, log=dataclasses.replace(base.log, enabled=False))
    rs = load(netns, write(tmp_path, render(policy)))
    assert rules(rs, "forward") == [DROP]
    assert rules(rs, "input") == head("iif") + EXPECTED["privatelink"]["input"] + [DROP]


@pytest.mark.kernel
def test_family_without_prefixes_never_becomes_any(netns: str, tmp_path: Path) -> None:
    """A family with no peer (or local) prefix gets no rule and no set, never 'any'."""
    base = example("public-https")
    v6_only = AddressSet(
        "v6-only", PrefixSet.from_prefixes([ipaddress.ip_network("2001:db8:5::/48")])
    )
    empty = AddressSet("nothing", PrefixSet())
    extra = (
        PolicyRule(
            "exception-v6only", Direction.EGRESS, Protocol.TCP, v6_only, (PortRange(8080, 8080),)
        ),
        PolicyRule("exception-empty", Direction.EGRESS, Protocol.TCP, empty, (PortRange(22, 22),)),
        PolicyRule(
            "exception-nolocal",
            Direction.INGRESS,
            Protocol.TCP,
            v6_only,
            (PortRange(9000, 9100),),
            local=AddressSet(
                "v4-local", PrefixSet.from_prefixes([ipaddress.ip_network("192.0.2.0/24")])
            ),
        ),
    )
    policy = dataclasses.replace(base, rules=base.rules + extra)
    rs = load(netns, write(tmp_path, render(policy)))
    out = rules(rs, "output")
    assert [r for r in out if r[0] == "exception-v6only"] == [
        new("exception-v6only", "ip6 daddr @v6_only_v6", "tcp dport 8080")
    ]
    assert not any(
        r[0] in ("exception-empty", "exception-nolocal") for r in out + rules(rs, "input")
    )
    assert {"v6_only_v6"} <= set(sets(rs))
    assert not {"v6_only_v4", "nothing_v4", "nothing_v6", "v4_local_v4"} & set(sets(rs))


# --- rendering only (no kernel) -----------------------------------------------------------


def test_require_kernel_fails_under_ci_and_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate: fail under CI=true, skip otherwise."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI"):
        require_kernel("simulated")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="simulated"):
        require_kernel("simulated")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_kernel("simulated")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="needs root"):
        require_kernel()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs root"):
        require_kernel()


def test_file_starts_with_the_atomic_reload_idiom() -> None:
    """add table, delete table, full definition: in this order, once."""
    lines = rule_lines(render(example("public-https")))
    assert lines[:3] == [
        "table inet netguard",
        "delete table inet netguard",
        "table inet netguard {",
    ]
    assert lines[-1] == "}"
    assert sum(ln.startswith("table ") for ln in lines) == 2


def test_set_elements_one_per_line_sorted() -> None:
    """Set elements: aggregated, sorted, one per line."""
    text = render(example("public-https"))
    block = text.split("set vendor_api_v4 {", 1)[1].split("}", 1)[0]
    assert [ln.strip() for ln in block.splitlines() if ln.strip().endswith(",")] == [
        "198.51.100.0/25,",
        "198.51.100.128/26,",
    ]


def test_one_prefix_change_is_one_line_diff(tmp_path: Path) -> None:
    """Adding one vendor prefix adds exactly one line."""
    before = render(example("public-https"))
    doc = yaml.safe_load((ROOT / "examples" / "public-https" / "deployment.yaml").read_text())
    # 198.51.100.224/27 is not adjacent to 198.51.100.128/26 (ends at .191): a new element.
    doc["vendor"]["api_ranges"].append("198.51.100.224/27")
    after = render(policy_of(deployment(tmp_path, "public-https", vendor=doc["vendor"])))
    diff = [
        ln
        for ln in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    assert diff == ["+\t\t\t198.51.100.224/27,"]


def test_rule_without_ipv6_peer_has_no_ipv6_rule() -> None:
    """The ntp exception has IPv4 peers only: one IPv4 rule, no IPv6 set."""
    lines = rule_lines(render(example("public-https")))
    ntp = [ln for ln in lines if 'comment "exception-ntp"' in ln]
    assert ntp == ['ip daddr @exc_ntp_v4 udp dport 123 ct state new accept comment "exception-ntp"']
    assert not any("exc_ntp_v6" in ln for ln in lines)


def test_ipv4_only_text_has_no_ipv6(tmp_path: Path) -> None:
    """families [ipv4]: the text mentions no IPv6 match at all."""
    text = render(policy_of(deployment(tmp_path, "public-https", families=["ipv4"])))
    lines = rule_lines(text)
    assert not any(tok in ln for ln in lines for tok in ("ip6 ", "icmpv6", "ipv6_addr"))
    assert (
        'meta nfproto ipv4 ct state established,related accept comment "netguard:established"'
        in lines
    )


def test_ports_lists_and_ranges() -> None:
    """Several ports and a range become one anonymous dport set."""
    base = example("public-https")
    rule = dataclasses.replace(
        base.rules[0],
        ports=(PortRange(443, 443), PortRange(1000, 2000), PortRange(8443, 8443)),
    )
    lines = rule_lines(render(dataclasses.replace(base, rules=(rule,))))
    assert (
        "ip daddr @vendor_api_v4 tcp dport { 443, 1000-2000, 8443 } ct state new accept "
        'comment "egress-vendor-api"'
    ) in lines


def test_icmp_exception_per_family() -> None:
    """ICMP is 'icmp' in IPv4 and 'ipv6-icmp' in IPv6."""
    base = example("public-https")
    both = AddressSet(
        "exc-ping",
        PrefixSet.from_prefixes(
            [ipaddress.ip_network("198.51.100.9/32"), ipaddress.ip_network("2001:db8:9::/64")]
        ),
    )
    ping = PolicyRule("exception-ping", Direction.EGRESS, Protocol.ICMP, both)
    lines = rule_lines(render(dataclasses.replace(base, rules=(ping,))))
    tail = 'ct state new accept comment "exception-ping"'
    assert [ln for ln in lines if "exception-ping" in ln] == [
        f"ip daddr @exc_ping_v4 meta l4proto icmp {tail}",
        f"ip6 daddr @exc_ping_v6 meta l4proto ipv6-icmp {tail}",
    ]


def test_free_text_stays_in_comment_lines() -> None:
    """Hostile descriptions reach '#' lines only and change no rule."""
    base = example("public-https")
    payload = 'PAYLOAD" accept\nflush ruleset\n} chain evil { policy accept; }'
    rules_ = tuple(dataclasses.replace(r, description=payload) for r in base.rules)
    text = render(dataclasses.replace(base, description=payload, rules=rules_))
    for line in text.splitlines():
        if "PAYLOAD" in line:
            assert line.lstrip().startswith("#"), line
    assert not any(ln.startswith(("flush", "chain evil")) for ln in rule_lines(text))
    assert rule_lines(text) == rule_lines(render(base))


def test_template_printing_raw_text_is_refused(tmp_path: Path) -> None:
    """A template printing free text without a filter fails closed."""
    (tmp_path / "nftables").mkdir()
    (tmp_path / "nftables" / "netguard.nft.j2").write_text("# {{ policy.description }}\n")
    with pytest.raises(TemplateSafetyError):
        render(example("public-https"), (tmp_path,))


def test_unwritable_names_raise_render_error() -> None:
    """Names that are not nft identifiers raise RenderError instead of being altered."""
    assert set_name("vendor-api", 4) == "vendor_api_v4"
    assert set_name("rcv-ingest", 6) == "rcv_ingest_v6"
    base = example("vpn")
    with pytest.raises(RenderError):
        render(dataclasses.replace(base, tunnel_interface='vti0" accept'))
    bad_id = dataclasses.replace(base.rules[0], id='egress-ike" accept')
    with pytest.raises(RenderError):
        render(dataclasses.replace(base, rules=(bad_id,)))
    bad_set = dataclasses.replace(
        base.rules[0], peer=dataclasses.replace(base.rules[0].peer, name="Bad Name")
    )
    with pytest.raises(RenderError):
        render(dataclasses.replace(base, rules=(bad_set,)))


def test_generate_writes_the_nft_file(tmp_path: Path) -> None:
    """netguard generate writes nftables/netguard.nft and lists it in the manifest."""
    src = ROOT / "examples" / "vpn" / "deployment.yaml"
    out = tmp_path / "out"
    err = io.StringIO()
    code = run_generate(
        GenerateOptions(deployment=src, out_dir=out, targets=[Target.NFTABLES], as_of=AS_OF), err
    )
    assert code == 0, err.getvalue()
    written = (out / NFT_FILE).read_text(encoding="utf-8")
    assert written == render(example("vpn"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["targets"]["nftables"]["files"]) == [NFT_FILE]
