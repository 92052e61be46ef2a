"""The SIP edge's generated Kamailio config: settings in, a config Kamailio itself accepts out."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from voiceagent.bridges.sip.edge import (
    EdgeConfig,
    Registration,
    parse_hostport,
    render_dispatcher_list,
    write_edge_files,
)
from voiceagent.config import load_settings
from voiceagent.errors import SipEdgeError

needs_kamailio = pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed")


def test_from_settings_reads_the_sip_edge_fields_and_the_trunks() -> None:
    settings = load_settings(
        sip_edge_port=5070,
        sip_edge_media=["10.0.0.5:5080", "10.0.0.6"],
        sip_edge_trusted=["192.0.2.0/24"],
        sip_trunks=[
            {"name": "carrier", "host": "trunk.example.net:5062", "username": "alice", "password": "s3cret",
             "registers": True, "expires_s": 300},
            {"name": "pbx", "host": "198.51.100.7", "source_ips": ["198.51.100.7"]},
        ],
        sip_edge_max_calls=5,
    )  # fmt: skip
    config = EdgeConfig.from_settings(settings, port=0)
    assert config.port == 0  # overrides win
    assert config.media == ("10.0.0.5:5080", "10.0.0.6")
    assert config.max_calls == 5
    assert config.trusted == ("192.0.2.0/24", "198.51.100.7")
    (reg,) = config.registrations
    assert (reg.name, reg.username, reg.password, reg.registrar, reg.expires_s) == (
        "carrier",
        "alice",
        "s3cret",
        "trunk.example.net:5062",
        300,
    )


def test_media_defaults_to_the_sip_media_processes() -> None:
    settings = load_settings(sip_bind_host="127.0.0.1", sip_port=5070, sip_processes=3)
    config = EdgeConfig.from_settings(settings)
    assert config.media == ("127.0.0.1:5070", "127.0.0.1:5071", "127.0.0.1:5072")
    assert config.max_calls == 9  # never more than the media processes hold (3 each)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"host": "1.2.3.4\nloadmodule"}, "sip_edge_host"),
        ({"media": ("10.0.0.1:99999",)}, "bad port"),
        ({"media": ('evil";exit;',)}, "sip_edge_media"),
        ({"trusted": ("not-a-net",)}, "sip_edge_trusted"),
        ({"tls_cert": Path("/tmp/c.pem")}, "go together"),
    ],
)
def test_bad_settings_are_refused_before_they_reach_the_script(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SipEdgeError, match=message):
        EdgeConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name"},
        {"password": 'p"w'},
        {"username": "a:b@c"},
        {"transport": "sctp"},
        {"registrar": "host;evil"},
    ],
)
def test_bad_registrations_are_refused(kwargs: dict[str, str]) -> None:
    values = {"name": "t", "username": "u", "password": "p", "registrar": "127.0.0.1:5090", **kwargs}
    with pytest.raises(SipEdgeError):
        Registration(**values)


def test_hostport_defaults_and_ipv6() -> None:
    assert parse_hostport("10.1.1.1", default_port=5060) == ("10.1.1.1", 5060)
    assert parse_hostport("[::1]:5070", default_port=5060) == ("[::1]", 5070)


def test_dispatcher_list_probes_every_media_process() -> None:
    text = render_dispatcher_list(EdgeConfig(media=("127.0.0.1:5080", "127.0.0.2")))
    assert "1 sip:127.0.0.1:5080 8 0" in text
    assert "1 sip:127.0.0.2:5060 8 0" in text


def test_generated_script_guards_pjsip_and_relays_in_dialog_only(tmp_path: Path) -> None:
    files = write_edge_files(EdgeConfig(port=5999, media=("127.0.0.1:5080",), max_calls=3), tmp_path)
    cfg = files.cfg.read_text()
    for needed in ("sanity_check", "pike_check_req", "is_known_dlg", "record_route", "ds_select_dst"):
        assert needed in cfg
    assert "listen=udp:127.0.0.1:5999" in cfg
    assert "listen=tcp:127.0.0.1:5999" in cfg
    assert "$shtinc(calls=>live) > 3" in cfg
    assert "tls.so" not in cfg
    assert "uac.so" not in cfg


@needs_kamailio
@pytest.mark.parametrize("with_extras", [False, True])
def test_kamailio_accepts_the_generated_config(tmp_path: Path, with_extras: bool) -> None:
    extras: dict[str, object] = {}
    if with_extras:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.write_text("placeholder")  # -c checks syntax and modules, not the certificate
        key.write_text("placeholder")
        extras = {
            "tls_cert": cert,
            "tls_key": key,
            "registrations": (Registration("carrier", "bob", "p:w", "127.0.0.1:5090", transport="tcp"),),
            "advertise": "203.0.113.10:5060",
            "trusted": ("198.51.100.0/24",),
        }
    config = EdgeConfig(port=5999, media=("127.0.0.1:5080", "127.0.0.1:5082"), **extras)  # type: ignore[arg-type]
    files = write_edge_files(config, tmp_path / "run")
    done = subprocess.run(
        ["kamailio", "-c", "-f", str(files.cfg)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if with_extras:
        uacreg = (files.db_dir / "uacreg").read_text()
        assert ":carrier:bob:127.0.0.1:bob:" in uacreg
        assert "p\\:w" in uacreg
        assert "sip\\:127.0.0.1\\:5090;transport=tcp" in uacreg
        assert '$rU == "carrier"' in files.cfg.read_text()
        assert (files.db_dir / "uacreg").stat().st_mode & 0o077 == 0  # trunk passwords stay private


def test_cli_prints_the_generated_config() -> None:
    from click.testing import CliRunner

    from voiceagent.cli import cli

    result = CliRunner().invoke(
        cli, ["sip-edge", "--port", "5999", "--media", "127.0.0.1:5080", "--max-calls", "9", "--print-config"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!KAMAILIO")
    assert "listen=udp:127.0.0.1:5999" in result.output
    assert "$shtinc(calls=>live) > 9" in result.output


def test_cli_refuses_a_bad_media_address() -> None:
    from click.testing import CliRunner

    from voiceagent.cli import cli

    result = CliRunner().invoke(cli, ["sip-edge", "--media", "bad host:1", "--print-config"])
    assert result.exit_code == 2
    assert "sip_edge_media" in result.output
