"""The deployment-profile schema: what a deployment YAML may say, validated with pydantic.

A *base profile* (``profiles/<name>.yaml``) fixes the connectivity ``mode`` and safe defaults; a
*deployment* ``extends`` one base profile and fills in the vendor's and the customer's addresses.
The merged document is validated here. Every free-text field (``description``, ``reason``) is
data only: it is escaped by each target and can never add or change a rule.

Sources: vendor security guide sections 3.2, 5.1-5.3 (connectivity modes, firewall rules,
allowlisting), 7.2 (logging) and 10.3 (quarterly review of exceptions).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from netguard.cidr import Prefix, PrefixSet
from netguard.errors import InputError, Location


class Mode(StrEnum):
    """Connectivity mode (guide 5.1)."""

    PUBLIC_HTTPS = "public-https"
    VPN = "vpn"
    PRIVATELINK = "privatelink"


class FamilyName(StrEnum):
    """Address family as written in a profile."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Linux interface names (at most 15 bytes); a leading "-" would read as an option to iptables.
_IFNAME = re.compile(r"^(?!\.\.?$)[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$")
# Printable text on one line: descriptions may hold anything a person writes and every target
# escapes it; as a first fence, C0/C1 control characters and the Unicode line and paragraph
# separators (line breaks to str.splitlines, JavaScript and some YAML readers) are refused.
_FREE_TEXT = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")
_LOG_PREFIX = re.compile(r"^[A-Za-z0-9 _:.\-]{1,29}$")


AS_OF_ENV = "NETGUARD_AS_OF"


def default_as_of() -> dt.date:
    """The date exceptions are checked against when none is given: ``$NETGUARD_AS_OF``
    (YYYY-MM-DD) if set, else today. Raises ``InputError`` (exit 2) for a malformed variable."""
    text = os.environ.get(AS_OF_ENV)
    if not text:
        return dt.date.today()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError.at(
            Location(f"${AS_OF_ENV}"), f"expected a date YYYY-MM-DD (got {text!r})"
        ) from None


def _slug(value: str) -> str:
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise ValueError(
            f"expected a name of 1-20 characters: a lowercase letter, then lowercase letters, "
            f"digits or '-' (got {value!r})"
        )
    return value


def _prefix(value: Any) -> Prefix:
    """Parse one CIDR prefix or bare address strictly; a bare address is its /32 or /128."""
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR prefix such as 198.51.100.0/24 (got {value!r})")
    text = value.strip()
    if "%" in text:
        raise ValueError(f"{text} has a zone index ('%...'): zone indexes are not accepted")
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "host bits set" in reason:
            loose = ipaddress.ip_network(text, strict=False)
            raise ValueError(
                f"{text} has host bits set: expected the network address, e.g. {loose}"
            ) from None
        raise ValueError(
            f"expected a CIDR prefix such as 198.51.100.0/24 or 2001:db8::/32 (got {text!r})"
        ) from None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        raise ValueError(
            f"{text} is an IPv4-mapped IPv6 prefix: write the IPv4 prefix instead, so that "
            "it lands in the IPv4 rules"
        )
    return net


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address such as 192.0.2.53 (got {value!r})")
    if "%" in value:
        raise ValueError(f"{value} has a zone index ('%...'): zone indexes are not accepted")
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"expected an IP address such as 192.0.2.53 (got {value!r})") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise ValueError(
            f"{value} is an IPv4-mapped IPv6 address: write {address.ipv4_mapped} instead"
        )
    return address


def _hostname(value: Any) -> str:
    """A DNS name in canonical form: ASCII (A-labels) or Unicode that IDNA maps to itself.

    Names that IDNA would silently change (soft hyphens, zero-width or full-width characters,
    upper case) are refused with the canonical spelling, so what the file says is what is used.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a DNS hostname such as api.vendor.example (got {value!r})")
    expected = f"expected a DNS hostname such as api.vendor.example (got {value!r})"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        raise ValueError(f"{value} is an IP address: expected a hostname (addresses go in ranges)")
    name = value.removesuffix(".")
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
        canonical = ascii_name.encode("ascii").decode("idna")
    except UnicodeError:
        raise ValueError(f"{expected}; it is not a valid IDNA name") from None
    labels = ascii_name.split(".")
    if (
        len(ascii_name) > 253
        or len(labels) < 2
        or not all(_HOSTNAME_LABEL.fullmatch(x) for x in labels)
    ):
        raise ValueError(expected)
    if name not in (ascii_name, canonical):
        raise ValueError(f"expected the hostname in canonical form: write {canonical!r}")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"expected a port number from 1 to 65535 (got {value!r})")
    return value


def _free_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text (got {value!r})")
    if not _FREE_TEXT.fullmatch(value):
        raise ValueError("expected a single line of text without control characters")
    if len(value) > 255:
        raise ValueError(f"expected at most 255 characters (got {len(value)})")
    return value


# Each constrained type carries the JSON Schema that editors see (`netguard profiles schema`);
# the validators above give the precise messages.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


def _date(value: Any) -> dt.date:
    """A calendar date: a YAML date, or text written exactly YYYY-MM-DD (ISO 8601)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a real date: expected YYYY-MM-DD") from None
    raise ValueError(f"expected a date written YYYY-MM-DD (got {value!r})")


StrictDate = Annotated[
    dt.date, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})
]


def _covers_less_than_everything(prefixes: list[Prefix]) -> list[Prefix]:
    """Refuse a list whose union is every IPv4 or every IPv6 address (0.0.0.0/0, two /1s...).

    The guide allows traffic to and from the vendor only; "any address" is never a vendor range.
    """
    whole = PrefixSet.from_prefixes(prefixes)
    if whole.v4_intervals == ((0, 2**32 - 1),) or whole.v6_intervals == ((0, 2**128 - 1),):
        raise ValueError(
            "this list covers every address of a family (like 0.0.0.0/0 or ::/0): expected "
            "the vendor's or your own ranges only"
        )
    return prefixes


Slug = Annotated[
    str,
    AfterValidator(_slug),
    WithJsonSchema({"type": "string", "pattern": _SLUG.pattern, "maxLength": 20}),
]
CIDR = Annotated[
    Prefix,
    BeforeValidator(_prefix),
    WithJsonSchema(
        {
            "type": "string",
            "description": "CIDR prefix with host bits clear (198.51.100.0/24, 2001:db8::/32) "
            "or a bare address (its /32 or /128)",
        }
    ),
]
Address = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    BeforeValidator(_address),
    WithJsonSchema({"type": "string", "description": "IPv4 or IPv6 address"}),
]
Hostname = Annotated[
    str, BeforeValidator(_hostname), WithJsonSchema({"type": "string", "format": "idn-hostname"})
]
Port = Annotated[
    int,
    BeforeValidator(_port),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535}),
]
PrefixList = Annotated[list[CIDR], AfterValidator(_covers_less_than_everything)]
FreeText = Annotated[
    str,
    BeforeValidator(_free_text),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 255,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$",
        }
    ),
]


def _unique(values: list[Any], what: str) -> list[Any]:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v} is listed twice")
        seen.add(v)
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Endpoint(_Strict):
    """One vendor API endpoint the customer connects to (guide 5.2: outbound HTTPS)."""

    name: Slug
    host: Hostname
    port: Port = 443
    description: FreeText = ""


class Vendor(_Strict):
    """What the vendor gives at onboarding (guide 5.3): endpoints and address ranges."""

    name: FreeText = "vendor"
    endpoints: list[Endpoint] = Field(min_length=1)
    api_ranges: PrefixList | None = Field(
        min_length=1,
        default=None,
        description="Destination prefixes of the vendor's API (public-https: internet "
        "addresses; vpn: private ranges reached through the tunnel). Not used in privatelink.",
    )
    webhook_ranges: PrefixList = Field(
        min_length=1, description="Source prefixes of the vendor's webhook callbacks."
    )

    @field_validator("endpoints")
    @classmethod
    def _unique_endpoint_names(cls, v: list[Endpoint]) -> list[Endpoint]:
        _unique([e.name for e in v], "endpoint name")
        return v


class WebhookReceiver(_Strict):
    """Where the vendor's webhook callbacks land: addresses and TCP ports on the customer side."""

    name: Slug
    addresses: PrefixList = Field(min_length=1)
    ports: list[Port] = Field(min_length=1)
    description: FreeText = ""

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, v: list[int]) -> list[int]:
        return _unique(v, "port")


class Customer(_Strict):
    """The customer's side: egress addresses for the vendor's allowlist, receivers, resolvers."""

    egress_addresses: PrefixList = Field(
        min_length=1,
        description="Public (NAT) addresses the customer's traffic leaves from; the vendor "
        "must allowlist them (guide 5.3).",
    )
    webhook_receivers: list[WebhookReceiver] = Field(min_length=1)
    dns_resolvers: list[Address] = Field(default_factory=list)

    @field_validator("webhook_receivers")
    @classmethod
    def _unique_receiver_names(cls, v: list[WebhookReceiver]) -> list[WebhookReceiver]:
        _unique([r.name for r in v], "receiver name")
        return v


class Logging(_Strict):
    """Logging of dropped (and optionally accepted) traffic (guide 5.2, 7.2)."""

    enabled: StrictBool = True
    prefix: str = "netguard-drop: "
    accept_prefix: str = "netguard-accept: "
    rate_per_minute: StrictInt = Field(default=10, ge=1, le=10000)
    burst: StrictInt = Field(default=5, ge=1, le=10000)
    log_accepted: StrictBool = False

    @field_validator("prefix", "accept_prefix")
    @classmethod
    def _log_prefix(cls, v: str) -> str:
        if not _LOG_PREFIX.fullmatch(v):
            raise ValueError(
                "expected 1-29 characters of letters, digits, space, '_', ':', '.' or '-' "
                "(the iptables LOG --log-prefix limit)"
            )
        return v


class Tls(_Strict):
    """TLS requirement for the vendor connection (guide 5.1: TLS 1.3)."""

    min_version: Literal["1.2", "1.3"] = "1.3"


class ExceptionRule(_Strict):
    """A named, time-limited exception: one extra permitted flow with a reason and expiry."""

    name: Slug
    reason: FreeText = Field(min_length=1)

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("expected a reason: why this exception exists")
        return v

    expires: StrictDate
    direction: Literal["egress", "ingress"]
    protocol: Literal["tcp", "udp", "icmp"]
    ports: list[Port] = Field(default_factory=list)
    peers: PrefixList = Field(min_length=1)
    ticket: FreeText = ""

    @field_validator("expires")
    @classmethod
    def _not_expired(cls, v: dt.date, info: ValidationInfo) -> dt.date:
        context = info.context or {}
        as_of = context.get("as_of") or default_as_of()
        if v < as_of:
            when = "checked against" if as_of != dt.date.today() else "today is"
            raise ValueError(
                f"exception expired on {v.isoformat()} ({when} {as_of.isoformat()}): "
                "renew it with a new expiry date or remove it"
            )
        return v

    @model_validator(mode="after")
    def _ports_match_protocol(self) -> ExceptionRule:
        if self.protocol == "icmp" and self.ports:
            raise ValueError("icmp exceptions take no ports")
        if self.protocol != "icmp" and not self.ports:
            raise ValueError(f"a {self.protocol} exception needs at least one port")
        return self


class IptablesOptions(_Strict):
    """iptables target options."""

    ipset_threshold: StrictInt = Field(
        default=16,
        ge=1,
        description="An address list longer than this goes into an ipset instead of one rule "
        "per prefix.",
    )


class AwsQuotas(_Strict):
    """Amazon VPC security-group quotas (AWS docs: 'Amazon VPC quotas', Security groups)."""

    rules_per_group: StrictInt = Field(default=60, ge=1, le=1000)
    groups_per_interface: StrictInt = Field(default=5, ge=1, le=16)
    max_rules_times_groups: StrictInt = Field(default=1000, ge=1)


class Aws(_Strict):
    """AWS security-group target options."""

    vpc_id: str = "vpc-00000000000000000"
    region: str = "us-east-1"
    group_name_prefix: Slug = "netguard"
    quotas: AwsQuotas = AwsQuotas()
    prefix_lists: StrictBool = Field(
        default=False,
        description="Put address lists that do not fit one group into customer-managed "
        "prefix lists (each reference counts its max-entries against the group quota).",
    )

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, v: str) -> str:
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", v):
            raise ValueError(f"expected a VPC id such as vpc-0123456789abcdef0 (got {v!r})")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-[0-9]", v):
            raise ValueError(f"expected an AWS region such as eu-west-1 (got {v!r})")
        return v


class Vpn(_Strict):
    """Site-to-site IPsec (guide 5.1 'VPN'): IKE UDP 500, NAT-T UDP 4500, ESP, to the peers only."""

    peers: PrefixList = Field(min_length=1, description="The vendor's VPN gateway addresses.")
    nat_traversal: StrictBool = True
    tunnel_interface: str | None = Field(
        default=None,
        description="Interface of the tunnel (VTI/XFRM). When unset, traffic inside the "
        "tunnel is matched by its IPsec policy (iptables -m policy; nft rt ipsec exists on "
        "egress, meta ipsec exists on ingress). XFRM interfaces need this set.",
    )

    @field_validator("tunnel_interface")
    @classmethod
    def _ifname(cls, v: str | None) -> str | None:
        if v is not None and not _IFNAME.fullmatch(v):
            raise ValueError(
                "expected an interface name of 1-15 letters, digits, '_', '.' or '-', "
                f"not starting with '-' (got {v!r})"
            )
        return v


class PrivateLink(_Strict):
    """AWS interface VPC endpoint (guide 5.1 'AWS PrivateLink')."""

    service_name: str
    endpoint_subnets: PrefixList = Field(
        min_length=1,
        description="Subnets holding the endpoint's network interfaces: the only egress "
        "destination for the vendor API in host firewalls.",
    )
    subnet_ids: list[str] = Field(
        min_length=1, description="Subnets (one per Availability Zone) for the endpoint."
    )
    application_cidrs: PrefixList = Field(default_factory=list)
    application_security_groups: list[str] = Field(default_factory=list)
    private_dns: StrictBool = True

    @field_validator("service_name")
    @classmethod
    def _service_name(cls, v: str) -> str:
        if not re.fullmatch(r"com\.amazonaws\.(vpce\.)?[a-z0-9-]+\.vpce-svc-[0-9a-f]{8,17}", v):
            raise ValueError(
                "expected an endpoint service name such as "
                f"com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0 (got {v!r})"
            )
        return v

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s):
                raise ValueError(
                    f"expected subnet ids such as subnet-0123456789abcdef0 (got {s!r})"
                )
        return v

    @field_validator("application_security_groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        for s in v:
            if not re.fullmatch(r"sg-[0-9a-f]{8,17}", s):
                raise ValueError(
                    f"expected security group ids such as sg-0123456789abcdef0 (got {s!r})"
                )
        return v

    @model_validator(mode="after")
    def _some_application(self) -> PrivateLink:
        if not self.application_cidrs and not self.application_security_groups:
            raise ValueError(
                "expected application_cidrs or application_security_groups: the endpoint's "
                "security group must admit TCP 443 from somewhere"
            )
        return self


class DeploymentProfile(_Strict):
    """A deployment: one base profile (``extends``) merged with the customer's values.

    Raises pydantic ``ValidationError``; :func:`netguard.profiles.load_deployment` turns it into
    a ``ProfileError`` with file, line and column.
    """

    schema_version: Literal[1] = Field(default=1, description="Version of this schema.")
    extends: Mode = Field(description="The base profile: public-https, vpn or privatelink.")
    mode: Mode = Field(description="Set by the base profile; must equal 'extends'.")
    name: Slug
    description: FreeText = ""
    families: list[FamilyName] = Field(
        default_factory=lambda: [FamilyName.IPV4, FamilyName.IPV6], min_length=1
    )
    vendor: Vendor
    customer: Customer
    logging: Logging = Logging()
    tls: Tls = Tls()
    exceptions: list[ExceptionRule] = Field(default_factory=list)
    iptables: IptablesOptions = IptablesOptions()
    aws: Aws = Aws()
    vpn: Vpn | None = None
    privatelink: PrivateLink | None = None

    @field_validator("exceptions")
    @classmethod
    def _unique_exceptions(cls, v: list[ExceptionRule]) -> list[ExceptionRule]:
        _unique([e.name for e in v], "exception name")
        return v

    @field_validator("families")
    @classmethod
    def _unique_families(cls, v: list[FamilyName]) -> list[FamilyName]:
        return _unique(v, "family")
