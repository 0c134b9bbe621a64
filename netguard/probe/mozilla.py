"""The Mozilla "modern" server profile, judged from what one address's probe already showed.

Source: Mozilla "Security/Server Side TLS", guidelines version 5.6, "Modern compatibility":
protocols TLS 1.3 only; cipher suites TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384,
TLS_CHACHA20_POLY1305_SHA256; TLS curves X25519, prime256v1, secp384r1; certificate type
ECDSA (P-256); certificate lifespan 90 days. (HSTS and cipher preference are not probed.)

The check ``mozilla.modern`` is PASS when every item holds, FAIL when one does not, and
UNTESTABLE when none fails but one could not be judged (e.g. TLS 1.2 refusal not probed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from netguard.probe.model import Check, Status

__all__ = ["MOZILLA_VERSION", "check_modern"]

MOZILLA_VERSION = "5.6"
_CIPHERS = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
_GROUPS = {"x25519", "secp256r1", "secp384r1"}  # prime256v1 is OpenSSL's name for secp256r1
_LIFESPAN = dt.timedelta(days=90)


def check_modern(checks: Sequence[Check]) -> Check:
    """``mozilla.modern`` from an address's checks (``tls.version``, ``tls.refuse-1.2``,
    ``cert.leaf``, ``cert.key``); see the module docstring for the items."""
    by_name = {c.name: c for c in checks}
    items: list[dict[str, Any]] = []

    def item(name: str, ok: bool | None, seen: object) -> None:
        items.append({"item": name, "ok": ok, "seen": seen})

    tls = by_name.get("tls.version")
    ev = tls.evidence if tls is not None else {}
    version = ev.get("version")
    refusal = by_name.get("tls.refuse-1.2")
    if version is None:
        item("protocols: TLS 1.3 only", None, "no TLS handshake")
    elif version != "TLSv1.3":
        item("protocols: TLS 1.3 only", False, version)
    elif refusal is None or refusal.status not in (Status.PASS, Status.FAIL):
        item("protocols: TLS 1.3 only", None, "TLS 1.2 refusal not proven either way")
    else:
        item("protocols: TLS 1.3 only", refusal.status is Status.PASS, refusal.message)
    cipher, group = ev.get("cipher"), ev.get("group")
    item("cipher suite", None if cipher is None else cipher in _CIPHERS, cipher)
    item("key-exchange group", None if group is None else group in _GROUPS, group)
    key = by_name.get("cert.key")
    key_type = key.evidence.get("type") if key is not None else None
    item("certificate type ECDSA P-256", None if key_type is None else key_type == "EC secp256r1",
         key_type)  # fmt: skip
    leaf = by_name.get("cert.leaf")
    if leaf is None or "not_before" not in leaf.evidence:
        item("certificate lifespan <= 90 days", None, "no certificate")
    else:
        span = dt.datetime.fromisoformat(leaf.evidence["not_after"]) - dt.datetime.fromisoformat(
            leaf.evidence["not_before"]
        )
        days = span / dt.timedelta(days=1)
        item("certificate lifespan <= 90 days", span <= _LIFESPAN, f"{days:g} days")
    evidence = {"guidelines": f"Mozilla Server Side TLS {MOZILLA_VERSION}", "items": items}
    failed = [i["item"] for i in items if i["ok"] is False]
    unknown = [i["item"] for i in items if i["ok"] is None]
    title = f"Mozilla modern (Server Side TLS {MOZILLA_VERSION})"
    if failed:
        return Check("mozilla.modern", Status.FAIL, f"{title}: fails {'; '.join(failed)}", evidence)
    if unknown:
        return Check(
            "mozilla.modern", Status.UNTESTABLE,
            f"{title}: cannot judge {'; '.join(unknown)}", evidence,
        )  # fmt: skip
    return Check("mozilla.modern", Status.PASS, f"{title}: every item holds", evidence)
