"""SIP media options, trunks and the small parsers of the SIP bridge (no pjsua2 needed)."""

from __future__ import annotations

import socket

import pytest

from voiceagent.bridges.sip.options import (
    PJSUA_MAX_CALLS,
    SipMediaOptions,
    parse_networks,
    parse_port_range,
    source_allowed,
)
from voiceagent.bridges.sip.strict_rtp import parse_address, pin_rtp_source
from voiceagent.bridges.sip.supervisor import plan_processes
from voiceagent.bridges.sip.trunks import agent_for_number, load_trunks
from voiceagent.config import load_settings
from voiceagent.errors import ConfigError


def test_port_ranges_parse_and_bad_ones_are_refused() -> None:
    assert parse_port_range("20000-20999") == (20000, 20999)
    for bad in ("20000", "a-b", "30000-20000", "80-90", "20000-20001", "20000-70000"):
        with pytest.raises(ConfigError):
            parse_port_range(bad)


def test_sources_are_matched_against_ips_and_cidrs() -> None:
    nets = parse_networks(["127.0.0.1", "10.0.0.0/8", " ", "::1"])
    assert source_allowed("127.0.0.1:5060", nets)
    assert source_allowed("10.2.3.4:1234", nets)
    assert source_allowed("[::1]:5060", nets)
    assert source_allowed("10.2.3.4", nets)
    assert not source_allowed("192.168.1.1:5060", nets)
    assert not source_allowed("not-an-ip:5060", nets)
    with pytest.raises(ConfigError):
        parse_networks(["300.1.1.1"])


def test_max_calls_is_bounded_by_the_wheels_compiled_limit() -> None:
    assert PJSUA_MAX_CALLS == 4
    SipMediaOptions(sip_port=5070, rtp_ports=(20000, 20100), max_calls=3)
    with pytest.raises(ConfigError, match="PJSUA_MAX_CALLS"):
        SipMediaOptions(sip_port=5070, rtp_ports=(20000, 20100), max_calls=4)


def test_the_bridge_tick_is_20_or_40_ms_from_settings_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SipMediaOptions.from_settings(load_settings(), sip_port=6000).frame_ms == 20
    monkeypatch.setenv("VOICEAGENT_SIP_FRAME_MS", "40")
    assert SipMediaOptions.from_settings(load_settings(), sip_port=6000).frame_ms == 40
    monkeypatch.setenv("VOICEAGENT_SIP_FRAME_MS", "30")
    with pytest.raises(ConfigError, match="sip_frame_ms"):
        load_settings()
    with pytest.raises(ConfigError, match="sip_frame_ms"):
        SipMediaOptions(sip_port=5070, rtp_ports=(20000, 20100), frame_ms=60)


def test_options_from_settings_trust_the_trunks_addresses() -> None:
    settings = load_settings(
        sip_trunks=[{"name": "carrier", "host": "sip.example.net", "source_ips": ["203.0.113.0/24"]}],
        sip_allowed_sources=["127.0.0.1"],
    )
    options = SipMediaOptions.from_settings(settings, sip_port=6000, allow=("10.1.0.0/16",))
    assert options.sip_port == 6000
    assert source_allowed("203.0.113.9:5060", options.allowed)
    assert source_allowed("10.1.2.3:5060", options.allowed)
    assert not source_allowed("198.51.100.1:5060", options.allowed)


def test_trunks_validate_and_route_numbers_to_agents() -> None:
    settings = load_settings(
        sip_trunks=[
            {"name": "a", "host": "a.example:5060", "numbers": {"+4930123": "sales"}},
            {"name": "b", "host": "b.example", "transport": "tls", "default_agent": "front-desk"},
        ]
    )
    trunks = load_trunks(settings)
    assert agent_for_number(trunks, "+4930123") == "sales"
    assert agent_for_number(trunks, "+4930999") == "front-desk"
    assert trunks[1].target("+15551234") == "sips:+15551234@b.example;transport=tls"
    assert trunks[0].target("sip:x@y") == "sip:x@y"
    assert agent_for_number([], "1") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"name": "x", "host": "h", "registers": True}], "username and a password"),
        ([{"name": "x", "host": "h"}, {"name": "x", "host": "g"}], "unique"),
        ([{"name": "bad name", "host": "h"}], "sip_trunks\\[0\\]"),
        ([{"name": "x", "host": "h", "transport": "sctp"}], "sip_trunks\\[0\\]"),
    ],
)
def test_bad_trunks_are_refused_with_their_index(raw: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trunks(load_settings(sip_trunks=raw))


def test_processes_get_distinct_ports_and_even_rtp_shares() -> None:
    specs = plan_processes(load_settings(sip_port=5070, sip_rtp_ports="20000-20999"), 3)
    assert [s.sip_port for s in specs] == [5070, 5071, 5072]
    assert [s.control_port for s in specs] == [6070, 6071, 6072]
    assert specs[0].rtp_ports == (20000, 20331)
    assert specs[2].rtp_ports[1] <= 20999
    assert all(s.rtp_ports[0] % 2 == 0 for s in specs)
    with pytest.raises(ConfigError):
        plan_processes(load_settings(sip_rtp_ports="20000-20010"), 8)


def test_processes_of_several_endpoints_get_a_sip_port_per_endpoint() -> None:
    settings = load_settings(sip_port=5070, sip_rtp_ports="20000-20999", sip_endpoints=4)
    specs = plan_processes(settings, 2)
    assert [s.sip_ports for s in specs] == [[5070, 5071, 5072, 5073], [5074, 5075, 5076, 5077]]
    assert [s.control_port for s in specs] == [6070, 6071]  # one control endpoint a process
    assert specs[0].rtp_ports[1] < specs[1].rtp_ports[0]
    argv = specs[1].argv(max_calls=3, engine="tone")
    assert argv[argv.index("--sip-port") + 1] == "5074"
    assert argv[argv.index("--endpoints") + 1] == "4"
    assert plan_processes(settings, 1, endpoints=2)[0].sip_ports == [5070, 5071]


def test_addresses_parse_for_pinning() -> None:
    assert parse_address("1.2.3.4:5000") == ("1.2.3.4", 5000)
    assert parse_address("[::1]:5000") is None
    assert parse_address("nonsense") is None


def test_pinning_connects_the_socket_bound_to_that_port() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ours,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        for s in (ours, peer, stranger):
            s.bind(("127.0.0.1", 0))
        ours.settimeout(0.5)
        assert pin_rtp_source(ours.getsockname(), peer.getsockname())
        stranger.sendto(b"stranger", ours.getsockname())
        peer.sendto(b"peer", ours.getsockname())
        assert ours.recv(100) == b"peer"  # the kernel dropped the stranger's datagram
        assert not pin_rtp_source(("127.0.0.1", 1), peer.getsockname())


def test_a_port_range_splits_into_even_slices_with_room_for_calls() -> None:
    from voiceagent.bridges.sip.options import split_port_range

    assert split_port_range((20000, 20999), 4) == [
        (20000, 20249),
        (20250, 20499),
        (20500, 20749),
        (20750, 20999),
    ]
    assert all(first % 2 == 0 for first, _ in split_port_range((20000, 20999), 3))
    with pytest.raises(ConfigError, match="too few"):
        split_port_range((20000, 20009), 4)


def test_endpoints_of_a_process_get_consecutive_sip_ports_and_their_own_rtp() -> None:
    from voiceagent.bridges.sip.options import endpoint_options

    options = SipMediaOptions(
        sip_port=5070, rtp_ports=(20000, 20119), tls_port=5170, tls_cert="c", tls_key="k"
    )
    each = endpoint_options(options, 3)
    assert [o.sip_port for o in each] == [5070, 5071, 5072]
    assert [o.tls_port for o in each] == [5170, 5171, 5172]
    assert [o.rtp_ports for o in each] == [(20000, 20039), (20040, 20079), (20080, 20119)]
    assert {o.max_calls for o in each} == {options.max_calls}
