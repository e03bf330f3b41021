"""Target URLs: refused for their form, their literal address, or any address their host resolves to."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from service_kit.webhook_targets import HostNotResolved, RefusedTarget, check_target


def resolving(table: dict[str, list[str]]):
    """A getaddrinfo that answers from ``table`` and fails for any other name, as DNS would."""

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in table[host]
        ]

    return getaddrinfo


PUBLIC = resolving({"hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})


def refusal(url: str, getaddrinfo=PUBLIC, allow_loopback: bool = False) -> str:
    with pytest.raises(RefusedTarget) as refused:
        check_target(url, getaddrinfo=getaddrinfo, allow_loopback=allow_loopback)
    return str(refused.value)


def test_a_public_https_url_is_accepted_with_every_address_it_resolves_to():
    assert check_target("https://hooks.example.com/sdmw?x=1", getaddrinfo=PUBLIC) == [
        ipaddress.ip_address("93.184.215.14"),
        ipaddress.ip_address("2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
    ]
    assert check_target("HTTP://hooks.example.com:8080/", getaddrinfo=PUBLIC)


def test_a_public_literal_address_is_accepted_without_dns():
    assert check_target("https://8.8.8.8/hook", getaddrinfo=resolving({})) == [ipaddress.ip_address("8.8.8.8")]
    assert check_target("https://[2606:4700::1111]/hook", getaddrinfo=resolving({}))


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/", "file:///etc/passwd", "gopher://hooks.example.com/", "hooks.example.com/hook", ""],
)
def test_only_http_and_https_are_accepted(url):
    assert "only http and https" in refusal(url)


@pytest.mark.parametrize(
    "url", ["https://user:pw@hooks.example.com/", "https://user@hooks.example.com/", "https://:pw@hooks.example.com/"]
)
def test_credentials_in_the_url_are_refused(url):
    assert "user name or password" in refusal(url)


@pytest.mark.parametrize("url", ["https:///hook", "https://:443/hook", "http://?x=1"])
def test_a_url_without_a_host_is_refused(url):
    assert "no host" in refusal(url)


def test_a_malformed_port_is_refused():
    assert "not a valid URL" in refusal("https://hooks.example.com:99999/")
    assert "not a valid URL" in refusal("https://hooks.example.com:http/")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://172.17.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "not a globally reachable"),
    ],
)
def test_a_literal_internal_address_is_refused(url, kind):
    reason = refusal(url, getaddrinfo=resolving({}))
    assert kind in reason
    assert "only delivered to public addresses" in reason


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1"])
def test_old_numeric_forms_of_an_address_are_read_as_that_address(host):
    # HTTP clients and resolvers read these as 127.0.0.1; so must the check, without asking DNS.
    assert "loopback" in refusal(f"http://{host}/", getaddrinfo=resolving({}))


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 for 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 for 169.254.169.254
    ],
)
def test_an_ipv6_address_carrying_an_internal_ipv4_address_is_refused(address, kind):
    assert kind in refusal(f"http://[{address}]/", getaddrinfo=resolving({}))


def test_a_name_resolving_to_the_metadata_service_is_refused():
    metadata = resolving({"metadata.attacker.example": ["169.254.169.254"]})
    reason = refusal("https://metadata.attacker.example/", getaddrinfo=metadata)
    assert reason.startswith("metadata.attacker.example resolves to 169.254.169.254, which is a link-local address")


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    mixed = resolving({"mixed.example": ["93.184.215.14", "10.1.2.3"]})
    assert "10.1.2.3, which is a private address" in refusal("https://mixed.example/", getaddrinfo=mixed)


def test_a_name_resolving_to_ipv6_loopback_is_refused():
    assert "loopback" in refusal("https://six.example/", getaddrinfo=resolving({"six.example": ["::1"]}))


def test_a_name_that_does_not_resolve_is_not_a_refusal_but_its_own_error():
    with pytest.raises(HostNotResolved):
        check_target("https://nowhere.example/", getaddrinfo=resolving({}))
    with pytest.raises(HostNotResolved):
        check_target("https://empty.example/", getaddrinfo=resolving({"empty.example": []}))


def test_the_resolver_is_asked_for_the_url_s_port():
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append((host, port))
        return PUBLIC(host, port)

    check_target("https://hooks.example.com/", getaddrinfo=getaddrinfo)
    check_target("http://hooks.example.com/", getaddrinfo=getaddrinfo)
    check_target("http://hooks.example.com:8443/", getaddrinfo=getaddrinfo)
    assert asked == [("hooks.example.com", 443), ("hooks.example.com", 80), ("hooks.example.com", 8443)]


def test_allowing_loopback_allows_loopback_only():
    local = resolving({"localhost": ["127.0.0.1", "::1"]})
    assert check_target("http://localhost:9000/hook", getaddrinfo=local, allow_loopback=True)
    assert check_target("http://127.0.0.1:9000/hook", getaddrinfo=local, allow_loopback=True)
    assert check_target("http://[::1]:9000/hook", getaddrinfo=local, allow_loopback=True)
    assert "link-local" in refusal("http://169.254.169.254/", getaddrinfo=local, allow_loopback=True)
    assert "private" in refusal("http://10.0.0.1/", getaddrinfo=local, allow_loopback=True)
    assert "loopback" in refusal("http://localhost:9000/hook", getaddrinfo=local)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:2]"])
def test_allowing_loopback_allows_the_real_loopback_forms(address):
    # ::ffff:127.x is the host's own IPv4 socket: the same loopback as 127.x.
    assert check_target(f"http://{address}:9000/hook", getaddrinfo=resolving({}), allow_loopback=True)


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64: a gateway turns it into 127.0.0.1 on its own side, not ours
        "64:ff9b::127.0.0.1",
        "2002:7f00:1::",  # 6to4 for 127.0.0.1: sent to a relay, not to this host
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::ffff:0:127.0.0.1",  # SIIT IPv4-translated
        "64:ff9b:1::7f00:1",  # local-use NAT64 (RFC 8215)
    ],
)
def test_allowing_loopback_does_not_allow_ipv6_forms_that_only_embed_127(address):
    for getaddrinfo, url in [
        (resolving({}), f"http://[{address}]:9000/hook"),
        (resolving({"sneaky.example": [address]}), "http://sneaky.example:9000/hook"),
    ]:
        reason = refusal(url, getaddrinfo=getaddrinfo, allow_loopback=True)
        assert "only delivered to public addresses" in reason
        # and without the allowance, of course
        refusal(url, getaddrinfo=getaddrinfo)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "private"),  # 10.0.0.1
        ("64:ff9b::c0a8:101", "private"),  # 192.168.1.1
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::", "private"),
        ("2002:ac11:1::", "private"),  # 172.17.0.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:5601:5601", "link-local"),  # Teredo, client 169.254.169.254
    ],
)
def test_ipv6_forms_embedding_an_internal_ipv4_are_refused_like_the_ipv4(address, kind):
    assert kind in refusal(f"http://[{address}]/", getaddrinfo=resolving({}))
    assert kind in refusal(f"http://[{address}]/", getaddrinfo=resolving({}), allow_loopback=True)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_nat64_and_6to4_for_a_public_ipv4_are_accepted(address):
    assert check_target(f"https://[{address}]/hook", getaddrinfo=resolving({}))


def test_teredo_is_refused_even_for_a_public_client():
    # A tunnel through a third party's relay, long obsolete: nothing a receiver needs.
    assert "private" in refusal("http://[2001:0:808:808:8000:63bf:f7f7:f7f7]/", getaddrinfo=resolving({}))
