"""``netguard probe --egress`` behind a firewall netguard generated, in the real kernel.

The customer namespace of the harness (tests/netns.py) loads the iptables files generated from
examples/public-https/deployment.yaml, whose api_ranges 198.51.100.0/25 and 2001:db8:100::/48
hold the vendor namespace's API addresses 198.51.100.5 and 2001:db8:100::5 (the cooperative
target). The vendor namespace listens on every probed port. Reasoned from the profile: egress
is TCP 443 to the api ranges only, everything else is dropped (never rejected), so from the
customer only 443 is open and every other port is filtered; without the firewall every
listened port is open and an unlistened one is closed (a RST came back), which is a FAIL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import netns
import pytest
from netns import IPV4, IPV6, Namespace, NetnsPair

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "public-https" / "deployment.yaml"
PORTS = (443, 22, 25, 53, 80, 3389, 8080, 8443)
UNLISTENED = 9999
TOOLS = ("iptables-restore", "ip6tables-restore", "ipset", "nft")


@pytest.fixture(scope="module")
def pair(kernel: None) -> Iterator[NetnsPair]:
    netns.require_kernel(TOOLS)
    with NetnsPair() as p:
        p.vendor.listen([IPV4.api, IPV6.api], PORTS)
        yield p


@pytest.fixture
def customer(pair: NetnsPair) -> Iterator[Namespace]:
    netns.reset_firewall(pair.customer)
    yield pair.customer
    netns.reset_firewall(pair.customer)


def _egress(ns: Namespace, *args: str) -> tuple[int, dict[str, object]]:
    """Run ``netguard probe`` inside ``ns`` (a real process in the namespace) -> (exit, JSON)."""
    argv = ns.exec_argv(
        [sys.executable, "-m", "netguard.cli", "probe", "--format", "json", "--timeout", "1.5",
         *args]
    )  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode in (0, 1, 3), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _states(doc: dict[str, object]) -> dict[int, str]:
    (egress,) = doc["egress"]  # type: ignore[index]
    return {p["port"]: p["state"] for p in egress["ports"]}


def test_without_firewall_everything_gets_through(customer: Namespace) -> None:
    """Control: every listened port is open, the unlistened one closed (RST); all but 443
    got through without being allowed, so the probe FAILs (exit 1)."""
    ports = ",".join(str(p) for p in (*PORTS, UNLISTENED))
    code, doc = _egress(customer, "--egress", IPV4.api, "--ports", ports, "--allow", "443")
    assert _states(doc) == {**dict.fromkeys(PORTS, "open"), UNLISTENED: "closed"}
    assert code == 1
    import jsonschema

    import netguard.probe

    schema = Path(netguard.probe.__file__).with_name("report.schema.json").read_text()
    jsonschema.validate(doc, json.loads(schema))
    statuses = {c["name"]: c["status"] for c in doc["egress"][0]["checks"]}  # type: ignore[index]
    assert statuses == {
        **{f"egress.port-{p}": "FAIL" for p in (*PORTS[1:], UNLISTENED)},
        "egress.port-443": "PASS",
    }


@pytest.mark.parametrize("family", [IPV4, IPV6], ids=["ipv4", "ipv6"])
def test_generated_firewall_lets_only_443_out(
    customer: Namespace, tmp_path: Path, family: netns.Family
) -> None:
    """With the generated iptables files loaded, only 443 is open; the allowed ports come
    from the profile (its endpoints' port 443), so the run passes (exit 0)."""
    directory = netns.generate(PROFILE, tmp_path / "out", "iptables") / "iptables"
    netns.load_iptables(customer, directory)
    code, doc = _egress(customer, str(PROFILE), "--egress", family.api)
    assert _states(doc) == {443: "open", **dict.fromkeys(PORTS[1:], "filtered")}
    assert code == 0
    assert doc["settings"]["allowed_egress_ports"] == [443]  # type: ignore[index]


def test_nothing_through_is_no_proof_of_filtering(customer: Namespace, tmp_path: Path) -> None:
    """Behind the generated firewall, probing only ports it drops (22, 25): nothing gets
    through, so the probe cannot tell the filter from a target that is down. That once
    passed (exit 0, as scanners do when every server is unreachable); now each port is
    UNTESTABLE and egress.reachable is an ERROR: exit 3."""
    directory = netns.generate(PROFILE, tmp_path / "out", "iptables") / "iptables"
    netns.load_iptables(customer, directory)
    code, doc = _egress(customer, str(PROFILE), "--egress", IPV4.api, "--ports", "22,25")
    assert _states(doc) == {22: "filtered", 25: "filtered"}
    statuses = {c["name"]: c["status"] for c in doc["egress"][0]["checks"]}  # type: ignore[index]
    assert statuses == {
        "egress.reachable": "ERROR",
        "egress.port-22": "UNTESTABLE",
        "egress.port-25": "UNTESTABLE",
    }
    assert code == 3
