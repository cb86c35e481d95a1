"""Which address a connection is accounted to: the peer, or what a trusted proxy forwarded (exact cases)."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers

from pianorhythm.server.addresses import ClientAddress, client_address, parse_trusted


def found(
    peer: str, *headers: tuple[str, str], trusted: str = "127.0.0.1,10.0.0.0/8,fd00::/8"
) -> ClientAddress:
    return client_address(peer, Headers(list(headers)), parse_trusted(trusted))


def test_parse_trusted_accepts_addresses_and_networks() -> None:
    assert [str(n) for n in parse_trusted(" 127.0.0.1 , 10.0.0.0/8,::1")] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy.example", "'proxy.example' is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)."),
        ("10.0.0.1/8", "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"),
        ("127.0.0.1,", "'127.0.0.1,' has an empty entry; separate addresses with commas."),
        ("", "'' has an empty entry; separate addresses with commas."),
    ],
)
def test_parse_trusted_refuses_with_a_sentence(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_trusted(text)
    assert str(caught.value) == message


def test_an_untrusted_peer_headers_are_ignored() -> None:
    assert found("192.0.2.9", ("X-Forwarded-For", "198.51.100.7")) == ClientAddress("192.0.2.9")
    assert found("192.0.2.9", ("X-Real-IP", "198.51.100.7")) == ClientAddress("192.0.2.9")
    assert client_address("127.0.0.1", Headers([("X-Forwarded-For", "198.51.100.7")]), ()) == ClientAddress(
        "127.0.0.1"
    )


def test_a_trusted_peer_without_headers_is_itself() -> None:
    assert found("127.0.0.1") == ClientAddress("127.0.0.1")


def test_forwarded_for_takes_the_right_most_untrusted_entry() -> None:
    # The client wrote "6.6.6.6" itself; 198.51.100.7 connected to the outer proxy 10.1.2.3, which
    # connected to us through 127.0.0.1.
    header = ("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.2.3")
    assert found("127.0.0.1", header) == ClientAddress("198.51.100.7")


def test_forwarded_for_repeated_headers_read_as_one_list() -> None:
    headers = (("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7"))
    assert found("127.0.0.1", *headers) == ClientAddress("198.51.100.7")


def test_forwarded_for_all_trusted_gives_the_left_most() -> None:
    assert found("127.0.0.1", ("X-Forwarded-For", "10.0.0.5, 10.0.0.6")) == ClientAddress("10.0.0.5")


def test_forwarded_for_wins_over_real_ip() -> None:
    headers = (("X-Real-IP", "203.0.113.1"), ("X-Forwarded-For", "198.51.100.7"))
    assert found("127.0.0.1", *headers) == ClientAddress("198.51.100.7")


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("198.51.100.7:51234", "198.51.100.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
    ],
)
def test_forwarded_forms(value: str, address: str) -> None:
    assert found("127.0.0.1", ("X-Forwarded-For", value)) == ClientAddress(address)


def test_real_ip_alone() -> None:
    assert found("10.9.9.9", ("X-Real-IP", " 203.0.113.1 ")) == ClientAddress("203.0.113.1")


@pytest.mark.parametrize(
    "headers",
    [
        (("X-Forwarded-For", "not-an-ip"),),
        (("X-Forwarded-For", "198.51.100.7, "),),
        (("X-Forwarded-For", "198.51.100.7:99999"),),
        (("X-Forwarded-For", "[2001:db8::1"),),
        (("X-Real-IP", "unknown"),),
        (("X-Real-IP", "203.0.113.1"), ("X-Real-IP", "203.0.113.2")),
    ],
)
def test_a_malformed_value_from_a_trusted_proxy_falls_back_to_the_proxy(
    headers: tuple[tuple[str, str], ...],
) -> None:
    result = found("127.0.0.1", *headers)
    assert result.address == "127.0.0.1"
    assert result.problem.startswith("unreadable X-") and result.problem.endswith(
        "from trusted proxy 127.0.0.1"
    )


def test_junk_left_of_the_client_is_never_read() -> None:
    assert found("127.0.0.1", ("X-Forwarded-For", "junk, 198.51.100.7")) == ClientAddress("198.51.100.7")


def test_a_dual_stack_peer_matches_its_ipv4_network() -> None:
    header = ("X-Forwarded-For", "198.51.100.7")
    assert found("::ffff:127.0.0.1", header) == ClientAddress("198.51.100.7")
    assert found("fd00::1", header) == ClientAddress("198.51.100.7")
