"""Certificate checks on the chain a server sent, parsed and verified with ``cryptography``.

Checks (each a :class:`~netguard.probe.model.Check`):

- ``cert.chain``: the chain verifies to a trust anchor of the store (the system store or
  ``--ca-bundle``) with ``cryptography.x509.verification`` (RFC 5280 path validation with the
  CA/Browser Forum profile). It is judged at a moment when the leaf is valid, so that expiry is
  reported once, by ``cert.expiry``, and the time used is in the evidence.
- ``cert.intermediates``: the server sent every certificate between its leaf and a trust anchor
  (RFC 8446 4.4.2: the sender's certificate first, each following one certifying the one before).
  A leaf alone whose issuer is no trust anchor is a *missing intermediate*.
- ``cert.hostname``: the SNI name matches a subjectAltName (RFC 6125 6.4: DNS names compared
  in A-label form, case-insensitively; a wildcard only as the whole left-most label, matching one
  label; the subject CN is not used); an IP literal matches an iPAddress SAN.
- ``cert.expiry``: days until notAfter against the ``fail_days`` and ``warn_days`` thresholds;
  a certificate not yet valid (notBefore in the future) or expired FAILs.
- ``cert.key``: RSA below 2048 bits, EC below 256 bits and DSA FAIL (NIST SP 800-57 part 1,
  CA/B Forum BR 6.1.5).
- ``cert.signature``: MD5 or SHA-1 signatures FAIL (CA/B Forum BR 7.1.3).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from netguard.errors import InputError, Location
from netguard.probe.model import Check, Status

__all__ = ["TrustStore", "check_certificates", "hostname_matches", "load_trust_store"]


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors: ``certificates`` and where they came from (``source``, for evidence)."""

    certificates: tuple[x509.Certificate, ...]
    source: str


def load_trust_store(ca_bundle: Path | None) -> TrustStore:
    """The anchors of ``ca_bundle`` (PEM, one or more certificates), or of the system store
    (OpenSSL's default CA file, else every PEM file of its CA directory:
    :func:`ssl.get_default_verify_paths`).

    Raises ``InputError`` (exit 2) when ``ca_bundle`` cannot be read, holds no certificate, or
    holds a certificate block that does not parse (named by its line).
    """
    if ca_bundle is not None:
        try:
            data = ca_bundle.read_bytes()
        except OSError as exc:
            raise InputError.at(
                Location(ca_bundle), f"cannot read CA bundle: {exc.strerror or exc}"
            ) from None
        certs: list[x509.Certificate] = []
        for match in _PEM_BLOCK.finditer(data):
            line = data.count(b"\n", 0, match.start()) + 1
            try:
                certs.append(x509.load_pem_x509_certificate(match.group()))
            except ValueError as exc:
                raise InputError.at(
                    Location(ca_bundle, line), f"this PEM certificate does not parse: {exc}"
                ) from None
        if not certs:
            raise InputError.at(
                Location(ca_bundle, 1), "expected PEM certificates (-----BEGIN CERTIFICATE-----)"
            )
        return TrustStore(tuple(certs), str(ca_bundle))
    paths = ssl.get_default_verify_paths()
    found: list[x509.Certificate] = []
    source = "system store (none found)"
    if paths.cafile and Path(paths.cafile).is_file():
        found = _load_pem_leniently(Path(paths.cafile))
        source = f"system store {paths.cafile}"
    if not found and paths.capath and Path(paths.capath).is_dir():
        for pem in sorted(Path(paths.capath).glob("*.pem")):
            found.extend(_load_pem_leniently(pem))
        source = f"system store {paths.capath}"
    return TrustStore(tuple(found), source)


_PEM_END = b"-----END CERTIFICATE-----"
# one PEM certificate block (RFC 7468 section 5.1), its position giving the line of an error
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def _load_pem_leniently(path: Path) -> list[x509.Certificate]:
    """Every certificate of a system PEM file that parses; one bad entry (or a deprecation
    warning about, e.g., a negative serial number in an old root) does not lose the others."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    out: list[x509.Certificate] = []
    for block in data.split(_PEM_END)[:-1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out.append(x509.load_pem_x509_certificate(block + _PEM_END))
            except ValueError:
                continue
    return out


def _a_label(name: str) -> str:
    """``name`` in lower-case A-label form (IDNA, RFC 5891); unchanged when not encodable."""
    name = name.rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name


def hostname_matches(cert: x509.Certificate, name: str) -> tuple[bool, list[str]]:
    """Does ``name`` (DNS name, Unicode or A-label, or IP literal) match a subjectAltName of
    ``cert`` (RFC 6125 6.4, RFC 2818 3.1)? Returns ``(matched, SAN entries as text)``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False, []
    dns_names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    ips = [
        a
        for a in san.get_values_for_type(x509.IPAddress)
        if isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    shown = dns_names + [str(a) for a in ips]
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return ip in ips, shown
    want = _a_label(name).split(".")
    for pattern in dns_names:
        labels = _a_label(pattern).split(".")
        if len(labels) != len(want):
            continue
        if labels[0] == "*" and len(labels) >= 3:
            if labels[1:] == want[1:] and not want[0].startswith("xn--"):
                return True, shown
        elif labels == want:
            return True, shown
    return False, shown


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _not_before(cert: x509.Certificate) -> dt.datetime:
    return _utc(cert.not_valid_before_utc)


def _not_after(cert: x509.Certificate) -> dt.datetime:
    return _utc(cert.not_valid_after_utc)


def _describe(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": _not_before(cert).isoformat(),
        "not_after": _not_after(cert).isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):  # wrong signature, unsupported key type
        return False
    return True


def _key_check(cert: x509.Certificate) -> Check:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        kind, size, ok = "RSA", key.key_size, key.key_size >= 2048
    elif isinstance(key, ec.EllipticCurvePublicKey):
        kind, size, ok = f"EC {key.curve.name}", key.curve.key_size, key.curve.key_size >= 256
    elif isinstance(key, ed25519.Ed25519PublicKey):
        kind, size, ok = "Ed25519", 256, True
    elif isinstance(key, ed448.Ed448PublicKey):
        kind, size, ok = "Ed448", 456, True
    elif isinstance(key, dsa.DSAPublicKey):
        kind, size, ok = "DSA", key.key_size, False
    else:
        kind, size, ok = type(key).__name__, 0, False
    evidence = {"type": kind, "bits": size}
    if ok:
        return Check("cert.key", Status.PASS, f"{kind} {size} bits", evidence)
    minimum = {"RSA": "2048 bits", "DSA": "not accepted"}.get(kind, "256 bits")
    return Check("cert.key", Status.FAIL, f"{kind} {size} bits (minimum {minimum})", evidence)


def _signature_check(cert: x509.Certificate) -> Check:
    algo = cert.signature_hash_algorithm
    oid_name = getattr(
        cert.signature_algorithm_oid, "_name", cert.signature_algorithm_oid.dotted_string
    )
    evidence = {"algorithm": oid_name}
    if isinstance(algo, hashes.MD5 | hashes.SHA1):
        return Check("cert.signature", Status.FAIL, f"{oid_name}: weak hash", evidence)
    return Check("cert.signature", Status.PASS, oid_name, evidence)


def _expiry_check(
    leaf: x509.Certificate, now: dt.datetime, warn_days: int, fail_days: int
) -> Check:
    before, after = _not_before(leaf), _not_after(leaf)
    days = (after - now) // dt.timedelta(days=1)
    evidence = {"not_before": before.isoformat(), "not_after": after.isoformat(), "days_left": days}
    if now < before:
        return Check(
            "cert.expiry",
            Status.FAIL,
            f"not yet valid: valid from {before:%Y-%m-%d %H:%M}Z",
            evidence,
        )
    if now > after:
        return Check("cert.expiry", Status.FAIL, f"expired on {after:%Y-%m-%d}", evidence)
    if days < fail_days:
        return Check(
            "cert.expiry",
            Status.FAIL,
            f"expires in {days} days (fail below {fail_days})",
            evidence,
        )
    if days < warn_days:
        return Check(
            "cert.expiry",
            Status.PASS,
            f"expires in {days} days (warn below {warn_days})",
            evidence,
            warning=True,
        )
    return Check("cert.expiry", Status.PASS, f"{days} days left ({after:%Y-%m-%d})", evidence)


def _chain_checks(
    chain: Sequence[x509.Certificate], name: str | None, store: TrustStore, now: dt.datetime
) -> list[Check]:
    from cryptography.x509 import verification

    leaf = chain[0]
    anchors = store.certificates
    self_signed = leaf.issuer == leaf.subject and _signed_by(leaf, leaf)
    # cert.intermediates: does the last certificate sent chain to an anchor?
    last = chain[-1]
    # the chain reaches the store when a certificate sent is itself an anchor (an
    # intermediate or a pinned leaf in --ca-bundle) or the last one is issued by an anchor
    in_store = any(c in anchors for c in chain) or any(_signed_by(last, a) for a in anchors)
    last_self = last.issuer == last.subject and _signed_by(last, last)
    evidence_i: dict[str, Any] = {"sent": len(chain), "last_issuer": last.issuer.rfc4514_string()}
    links_ok = all(_signed_by(chain[i], chain[i + 1]) for i in range(len(chain) - 1))
    if self_signed and len(chain) == 1:
        inter = Check("cert.intermediates", Status.PASS, "self-signed: no issuer", evidence_i)
    elif not links_ok:
        inter = Check(
            "cert.intermediates",
            Status.FAIL,
            "the certificates sent do not form a chain (each must certify the one before, "
            "RFC 8446 4.4.2)",
            evidence_i,
        )
    elif in_store or last_self:
        inter = Check(
            "cert.intermediates",
            Status.PASS,
            f"{len(chain)} certificate(s) sent, reaching a trust anchor"
            if in_store
            else f"{len(chain)} certificate(s) sent, ending in a root",
            evidence_i,
        )
    else:
        inter = Check(
            "cert.intermediates",
            Status.FAIL,
            f"missing intermediate: the server sent {len(chain)} certificate(s) and the issuer "
            f"of the last ({last.issuer.rfc4514_string()}) is not a trust anchor of "
            f"{store.source}",
            evidence_i,
        )
    # cert.chain: path validation at a moment when the leaf is valid, for a name the leaf
    # holds (the hostname is judged once, by cert.hostname): the SNI if it matches, else the
    # first subjectAltName the verifier accepts as a name (a malformed one, such as
    # "*.*.example" or "a b.example", would stop the validation before the chain is judged).
    when = min(max(now, _not_before(leaf)), _not_after(leaf))
    candidates: list[str] = []
    if name is not None and hostname_matches(leaf, name)[0]:
        candidates.append(name)
    candidates += hostname_matches(leaf, "invalid.invalid")[1]
    candidates.append(name or "invalid.invalid")
    evidence_c: dict[str, Any] = {"store": store.source, "validated_at": when.isoformat()}
    if self_signed and not any(a == leaf for a in anchors):
        return [
            Check(
                "cert.chain", Status.FAIL, "self-signed certificate, not a trust anchor", evidence_c
            ),
            inter,
        ]
    if not anchors:
        return [
            Check(
                "cert.chain", Status.UNTESTABLE, f"no trust anchors in {store.source}", evidence_c
            ),
            inter,
        ]
    verifier = None
    for candidate in candidates:
        try:
            verifier = (
                verification.PolicyBuilder()
                .store(verification.Store(list(anchors)))
                .time(when)
                .build_server_verifier(_subject(candidate))
            )
            break
        except ValueError:  # not a name the verifier accepts: try the next one
            continue
    if verifier is None:
        return [
            Check("cert.chain", Status.ERROR, "cannot verify: no usable name", evidence_c),
            inter,
        ]
    try:
        path = verifier.verify(leaf, list(chain[1:]))
    except verification.VerificationError as exc:
        return [Check("cert.chain", Status.FAIL, f"does not verify: {exc}", evidence_c), inter]
    except ValueError as exc:
        return [Check("cert.chain", Status.ERROR, f"cannot verify: {exc}", evidence_c), inter]
    evidence_c["path"] = [c.subject.rfc4514_string() for c in path]
    return [
        Check(
            "cert.chain",
            Status.PASS,
            f"verifies to {path[-1].subject.rfc4514_string()}",
            evidence_c,
        ),
        inter,
    ]


def _subject(name: str) -> Any:
    """A verifier subject for ``name``: an IP literal as IPAddress, a wildcard SAN as a name it
    covers, else the A-label DNS name. Raises ``ValueError`` for a name the verifier refuses."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if name.startswith("*."):  # a wildcard SAN: ask for a name it covers
        name = "probe" + name[1:]
    return x509.DNSName(_a_label(name))


def check_certificates(
    chain_der: Sequence[bytes],
    name: str | None,
    store: TrustStore,
    *,
    now: dt.datetime,
    warn_days: int,
    fail_days: int,
) -> list[Check]:
    """Every certificate check on ``chain_der`` (DER, leaf first, as the server sent it)
    for server ``name`` (the SNI, or the IP literal), at time ``now`` (aware UTC).

    Returns ``cert.leaf`` (description), ``cert.chain``, ``cert.intermediates``,
    ``cert.hostname``, ``cert.expiry``, ``cert.key`` and ``cert.signature``; an unparsable
    certificate gives one ``cert.parse`` FAIL instead.
    """
    try:
        chain = [x509.load_der_x509_certificate(d) for d in chain_der]
    except ValueError as exc:
        return [Check("cert.parse", Status.FAIL, f"certificate does not parse: {exc}")]
    if not chain:
        return [Check("cert.parse", Status.FAIL, "the server sent no certificate")]
    leaf = chain[0]
    checks = [Check("cert.leaf", Status.PASS, leaf.subject.rfc4514_string(), _describe(leaf))]
    checks += _chain_checks(chain, name, store, now)
    if name is None:
        checks.append(
            Check("cert.hostname", Status.UNTESTABLE, "no server name to match (give --sni)")
        )
    else:
        matched, sans = hostname_matches(leaf, name)
        evidence = {"name": name, "san": sans}
        if matched:
            checks.append(Check("cert.hostname", Status.PASS, f"{name} matches", evidence))
        elif not sans:
            checks.append(
                Check(
                    "cert.hostname",
                    Status.FAIL,
                    "no DNS or IP subjectAltName (RFC 6125 6.4.4: the subject CN is not used)",
                    evidence,
                )
            )
        else:
            checks.append(
                Check(
                    "cert.hostname",
                    Status.FAIL,
                    f"{name} matches none of {', '.join(sans)}",
                    evidence,
                )
            )
    checks.append(_expiry_check(leaf, now, warn_days, fail_days))
    checks.append(_key_check(leaf))
    checks.append(_signature_check(leaf))
    return checks
