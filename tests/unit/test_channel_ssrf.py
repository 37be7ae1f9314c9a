"""SSRF protection: hostile webhook targets are refused, each with a clear reason."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from notifications.channels.ssrf import UnsafeTargetError, check_url
from notifications.errors import RetryableError

PUBLIC = "93.184.216.34"


def resolver_for(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> Sequence[str]:
        return table.get(host, [PUBLIC])

    return resolve


DNS = resolver_for(
    {
        "internal.example": ["10.0.0.5"],
        "mixed.example": [PUBLIC, "192.168.0.10"],
        "metadata.example": ["169.254.169.254"],
        "v6loop.example": ["::1"],
        "mapped.example": ["::ffff:10.1.2.3"],
        "cgnat.example": ["100.64.1.1"],
    }
)

HOSTILE = [
    ("http://hooks.example.com/", "scheme_not_allowed"),
    ("ftp://hooks.example.com/", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("gopher://127.0.0.1:25/", "scheme_not_allowed"),
    ("https://127.0.0.1/", "loopback_address"),
    ("https://localhost/", "loopback_address"),
    ("https://api.localhost/", "loopback_address"),
    ("https://2130706433/", "loopback_address"),  # decimal 127.0.0.1
    ("https://0x7f000001/", "loopback_address"),  # hex
    ("https://0177.0.0.1/", "loopback_address"),  # octal
    ("https://0x7f.1/", "loopback_address"),  # mixed short form
    ("https://127.1/", "loopback_address"),
    ("https://[::1]/", "loopback_address"),
    ("https://[::ffff:127.0.0.1]/", "loopback_address"),  # IPv4-mapped IPv6
    ("https://[::ffff:7f00:1]/", "loopback_address"),
    ("https://169.254.169.254/latest/meta-data/", "metadata_address"),
    ("https://[fd00:ec2::254]/", "metadata_address"),
    ("https://[::ffff:169.254.169.254]/", "metadata_address"),
    ("https://2852039166/", "metadata_address"),  # decimal 169.254.169.254
    ("https://169.254.170.2/v2/credentials", "metadata_address"),  # ECS task credentials
    ("https://metadata.example/", "metadata_address"),  # a name that resolves to it
    ("https://10.0.0.1/", "private_address"),
    ("https://172.16.5.4/", "private_address"),
    ("https://192.168.1.1/", "private_address"),
    ("https://[fc00::1]/", "private_address"),
    ("https://internal.example/", "private_address"),
    ("https://mixed.example/", "private_address"),  # one bad address is enough
    ("https://mapped.example/", "private_address"),
    ("https://[64:ff9b::a00:1]/", "private_address"),  # NAT64 of 10.0.0.1
    ("https://169.254.1.1/", "link_local_address"),
    ("https://[fe80::1]/", "link_local_address"),
    ("https://224.0.0.1/", "multicast_address"),
    ("https://[ff02::1]/", "multicast_address"),
    ("https://0.0.0.0/", "unspecified_address"),
    ("https://[::]/", "unspecified_address"),
    ("https://100.64.1.1/", "non_public_address"),  # carrier-grade NAT
    ("https://cgnat.example/", "non_public_address"),
    ("https://198.18.0.1/", "private_address"),  # benchmarking (listed as private)
    ("https://v6loop.example/", "loopback_address"),
    ("https://user:pass@hooks.example.com/", "credentials_in_url"),
    ("https://hooks.example.com@127.0.0.1/", "credentials_in_url"),
    ("https://[fe80::1%25eth0]/", "invalid_host"),
    ("https://256.256.256.256/", "invalid_host"),
    ("https://hooks example.com/", "invalid_host"),
    ("https://hooks.example.com:99999/", "invalid_url"),
    ("https:///path-only", "invalid_url"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_hostile_targets_are_refused_with_a_reason(url: str, why: str) -> None:
    # Given a hostile webhook URL, When it is checked, Then it is refused and the reason says why
    with pytest.raises(UnsafeTargetError) as refusal:
        check_url(url, resolver=DNS)
    assert refusal.value.reason == "unsafe_target"
    assert refusal.value.why == why
    assert why in str(refusal.value)


def test_the_table_has_at_least_fifteen_hostile_targets() -> None:
    assert len(HOSTILE) >= 15


def test_a_public_https_url_is_accepted_and_pinned_to_the_checked_address() -> None:
    target = check_url("https://Hooks.Example.com:8443/in?x=1", resolver=DNS)
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "hooks.example.com",
        8443,
        "/in?x=1",
        PUBLIC,
    )


def test_loopback_is_allowed_only_with_the_local_development_flag() -> None:
    target = check_url("http://127.0.0.1:8080/hook", resolver=DNS, allow_loopback=True)
    assert (target.address, target.port) == ("127.0.0.1", 8080)
    named = check_url(
        "http://localhost/hook",
        resolver=resolver_for({"localhost": ["127.0.0.1"]}),
        allow_loopback=True,
    )
    assert named.address == "127.0.0.1"


def test_the_local_development_flag_still_refuses_private_and_plain_http_to_public_hosts() -> None:
    with pytest.raises(UnsafeTargetError) as private:
        check_url("https://10.0.0.1/", resolver=DNS, allow_loopback=True)
    assert private.value.why == "private_address"
    with pytest.raises(UnsafeTargetError) as plain:
        check_url("http://hooks.example.com/", resolver=DNS, allow_loopback=True)
    assert plain.value.why == "scheme_not_allowed"


def test_an_unresolvable_host_is_retryable() -> None:
    def failing(host: str, port: int) -> Sequence[str]:
        raise OSError("Temporary failure in name resolution")

    with pytest.raises(RetryableError) as failure:
        check_url("https://hooks.example.com/", resolver=failing)
    assert failure.value.reason == "webhook_dns_failed"
