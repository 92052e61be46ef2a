"""Settings: ``VOICEAGENT_*`` environment variables over an optional TOML file over defaults.

Built explicitly with :func:`load_settings` and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from voiceagent.errors import ConfigError

__all__ = ["Settings", "load_settings"]

# Call log and spool live with the user's data, not in the cache: they must survive a cache wipe.
_DATA_DIR = Path.home() / ".local" / "share" / "voiceagent"


class Settings(BaseSettings):
    """Every knob of a voiceagent process. Field names map to ``VOICEAGENT_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="VOICEAGENT_", extra="forbid", frozen=True)

    # Agent
    agent_path: Path | None = Field(
        default=None, description="Agent definition (YAML/TOML); the shipped front-desk agent if unset."
    )

    # Turn-taking (media layer)
    vad_threshold: float = Field(default=0.5, ge=0.05, le=0.95, description="Silero speech probability.")
    vad_min_speech_ms: int = Field(default=100, ge=20, description="Speech shorter than this is ignored.")
    turn_hangover_ms: int = Field(
        default=500, ge=100, le=5000, description="Silence after speech that ends the caller's turn."
    )
    turn_speculate_ms: int = Field(
        default=200,
        ge=0,
        description=(
            "Silence after which the answer is prepared (not played) before the hangover ends the turn;"
            " 0 disables."
        ),
    )
    max_call_s: float = Field(default=600.0, gt=0, description="A file call stops after this long.")

    # Models
    asr_model: str = Field(
        default="whisper-tiny.en",
        description=(
            "Packaged model name, a local CTranslate2 Whisper directory,"
            " or a hub id already in the local cache."
        ),
    )
    asr_language: str | None = Field(default="en", description="Language code, or None to detect.")
    asr_threads: int = Field(default=2, ge=1)
    tts_model: str = Field(
        default="hibari-heart", description="Packaged voice name or a local hibari-compatible ONNX file."
    )
    tts_speed: float = Field(default=1.0, ge=0.5, le=2.0)
    vad_model: str = Field(default="silero-vad", description="Packaged name or a local silero ONNX file.")
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "voiceagent",
        description="Where models shipped in parts are joined (generated, never downloaded).",
    )

    # Optional OpenAI-compatible chat endpoint for the agent brain
    llm_base_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:8000/v1")
    llm_api_key: str | None = None
    llm_model: str = "default"
    llm_timeout_s: float = Field(default=8.0, gt=0)

    # Call log
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{_DATA_DIR / 'calls.db'}",
        description="SQLAlchemy async URL: SQLite by default, postgresql+asyncpg://... in production.",
    )
    spool_dir: Path = Field(
        default=_DATA_DIR / "spool",
        description="Where the call-log writer keeps batches (JSONL, fsync'd) while the database is down.",
    )

    recordings_dir: Path = Field(
        default=_DATA_DIR / "recordings",
        description="Where call recordings are kept; relative recording paths in the call log resolve here.",
    )

    # REST API (voiceagent.api)
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production: the API serves no interactive docs (/docs, /redoc); the schema stays.",
    )
    api_bind_host: str = Field(default="127.0.0.1", description="Address `voiceagent serve` listens on.")
    api_bind_port: int = Field(default=8080, ge=1, le=65535)
    drain_timeout_s: float = Field(
        default=600.0,
        ge=0,
        description="After SIGTERM, how long `voiceagent serve` lets live calls finish (taking no new"
        " ones, /readyz 503) before it ends them; a second SIGTERM or Ctrl-C ends them at once.",
    )

    # Session memory (voiceagent.memory)
    redis_url: str | None = Field(
        default=None,
        description="e.g. redis://127.0.0.1:6379/0; None keeps memory in this process (lost on exit).",
    )
    memory_budget_chars: int = Field(
        default=6000,
        ge=1000,
        description="Most characters of summary plus recent turns handed to the brain (~4 per token).",
    )
    caller_memory_ttl_s: float = Field(
        default=30 * 86400.0, gt=0, description="How long what a caller said is kept after their last call."
    )

    # Webhooks and agent tool calls (voiceagent.webhooks)
    webhooks_enabled: bool = Field(
        default=True, description="`voiceagent serve` runs the webhook dispatcher in its API process."
    )
    webhook_retry_schedule_s: tuple[float, ...] = Field(
        default=(0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0),
        min_length=1,
        description="Delay before each attempt, after the previous one failed (first: after the event).",
    )
    webhook_timeout_s: float = Field(default=15.0, gt=0, description="One delivery attempt's HTTP timeout.")
    webhook_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the dispatcher looks for new events and due retries."
    )
    webhook_batch_size: int = Field(default=100, ge=1, le=1000, description="Rows claimed per poll.")
    webhook_concurrency: int = Field(default=16, ge=1, le=512, description="Deliveries in flight at once.")
    webhook_secret_overlap_s: float = Field(
        default=86400.0, ge=0, description="After a rotation, how long the old secret still signs too."
    )
    webhook_log_retention_days: float = Field(
        default=30.0, ge=0, description="Settled deliveries and sent events older than this go; 0 keeps all."
    )
    tool_call_timeout_s: float = Field(
        default=1.5, gt=0, description="An agent tool call's HTTP timeout; past it the fallback is said."
    )

    # Admin console (voiceagent.console)
    console_session_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, description="How long a console login lasts before asking again."
    )
    console_poll_ms: int = Field(
        default=1000, ge=200, le=60000, description="How often the live-calls page asks for the list."
    )

    # Model workers and the worker pool (voiceagent.worker, the realtime engine)
    engine: Literal["cascade", "e2e", "realtime"] = Field(
        default="cascade",
        description="cascade: CPU models in-process; e2e: the speech LM; realtime: a worker over WebSocket.",
    )
    realtime_url: str | None = Field(
        default=None,
        description="ws://host:8090/v1/realtime of a worker or Realtime server; unset: use the pool.",
    )
    realtime_token: str | None = Field(
        default=None, description="Bearer token sent to realtime_url or pool workers."
    )
    realtime_model: str = Field(
        default="voiceagent", description="The model query parameter Realtime servers want."
    )
    realtime_connect_timeout_s: float = Field(default=5.0, gt=0)
    realtime_reconnects: int = Field(
        default=3, ge=0, description="Re-placements of one call after a worker drops."
    )
    realtime_sample_rate: Literal[16000, 24000] | None = Field(
        default=None,
        description="PCM rate on the wire; None: the media layer's. 24000 for servers that only take that.",
    )
    worker_host: str = Field(default="127.0.0.1", description="Address `voiceagent worker` listens on.")
    worker_port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port.")
    worker_token: str | None = Field(
        default=None,
        description="Bearer token clients must present; required when environment is production.",
    )
    worker_capacity: int = Field(default=20, ge=1, description="Sessions one worker serves at once.")
    worker_id: str | None = Field(default=None, description="Name in the pool registry; host:port if unset.")
    worker_url: str | None = Field(
        default=None, description="URL media nodes reach this worker at; ws://host:port/v1/realtime if unset."
    )
    worker_heartbeat_s: float = Field(
        default=1.0, gt=0, description="How often a worker refreshes its entry."
    )
    worker_ttl_s: float = Field(default=3.0, gt=0, description="A worker silent this long counts as dead.")
    worker_drain_timeout_s: float = Field(
        default=600.0, gt=0, description="On SIGTERM, wait this long for calls to finish before exiting."
    )
    pool_prefix: str = Field(
        default="voiceagent:pool:", description="Redis key prefix of the worker registry."
    )

    # SIP trunks and the SIP edge (voiceagent.bridges.sip)
    # -- the pjsua2 media processes (voiceagent.bridges.sip; docs/sip.md)
    sip_bind_host: str = Field(default="127.0.0.1", description="Address a media process binds SIP and RTP.")
    sip_public_host: str | None = Field(
        default=None, description="Address put in SDP/Contact when callers reach us through NAT."
    )
    sip_port: int = Field(default=5070, ge=1, le=65535, description="SIP port of the first media process.")
    sip_rtp_ports: str = Field(default="20000-20999", description="RTP ports A-B, split between processes.")
    sip_processes: int = Field(default=1, ge=1, le=64, description="Media processes the supervisor runs.")
    sip_max_calls: int = Field(
        default=3, ge=1, le=3, description="Calls per SIP endpoint (the wheel caps pjsua at 4, one kept)."
    )
    sip_endpoints: int = Field(
        default=1,
        ge=1,
        le=32,
        description="SIP endpoints (pjsua2 copies, 3 calls each) per media process, on consecutive SIP"
        " ports; more share one loop and batch their calls' work.",
    )
    sip_allowed_sources: list[str] = Field(
        default_factory=lambda: ["127.0.0.1"], description="IPs/CIDRs SIP is accepted from (the edge)."
    )
    sip_codecs: list[str] = Field(
        default_factory=lambda: ["PCMU", "PCMA", "G722"], description="Codecs in priority order."
    )
    sip_frame_ms: int = Field(
        default=20,
        description="Audio handed between pjsip and the media layer per clock tick (RTP stays 20 ms); 40"
        " wakes each process half as often (a quarter less CPU a call) for up to 20-40 ms later barge-in.",
    )
    sip_rtp_timeout_s: float = Field(default=30.0, gt=0, description="Hang up after this long without RTP.")
    sip_strict_rtp: bool = Field(
        default=True, description="Take RTP only from the SDP's address (off for callers behind NAT)."
    )
    sip_tls_port: int | None = Field(default=None, ge=1, le=65535, description="Also SIP over TLS here.")
    sip_tls_cert: Path | None = Field(default=None, description="PEM certificate for sip_tls_port.")
    sip_tls_key: Path | None = Field(default=None, description="PEM private key of sip_tls_cert.")
    sip_outbound_proxy: str | None = Field(
        default=None, description="Route outbound INVITE/REGISTER through this URI (the edge)."
    )
    sip_control_urls: list[str] = Field(
        default_factory=list, description="Control endpoints of media processes POST /v1/calls uses."
    )
    sip_trunks: list[dict[str, Any]] = Field(
        default_factory=list, description="Trunks (see voiceagent.bridges.sip.trunks.SipTrunk)."
    )
    sip_agents: dict[str, Path] = Field(
        default_factory=dict, description="Agent name -> agent file, for numbers routed to other agents."
    )
    # -- the SIP edge (Kamailio in front of the media processes; voiceagent.bridges.sip.edge)
    sip_edge_enabled: bool = Field(default=False, description="`voiceagent serve` also runs the SIP edge.")
    sip_edge_host: str = Field(default="127.0.0.1", description="Address the SIP edge listens on (UDP+TCP).")
    sip_edge_port: int = Field(default=5060, ge=1, le=65535, description="SIP edge port (UDP and TCP).")
    sip_edge_advertise: str | None = Field(
        default=None, description="host[:port] the edge puts in Via/Record-Route when behind NAT."
    )
    sip_edge_tls_port: int = Field(
        default=5061, ge=1, le=65535, description="SIP over TLS, if a cert is set."
    )
    sip_edge_tls_cert: Path | None = Field(default=None, description="PEM certificate; enables TLS.")
    sip_edge_tls_key: Path | None = Field(default=None, description="PEM private key of sip_edge_tls_cert.")
    sip_edge_media: list[str] = Field(
        default_factory=list,
        description="SIP media processes (host:port) the edge spreads calls over; default: sip_port + i.",
    )
    sip_edge_trusted: list[str] = Field(
        default_factory=list, description="Trunk addresses or subnets (CIDR) never rate-limited by pike."
    )
    sip_edge_max_calls: int = Field(default=200, ge=1, description="Calls past this get 503 with a Reason.")
    sip_edge_pike_requests: int = Field(
        default=60, ge=1, description="Requests one source may send per 2 s before pike blocks it."
    )
    sip_edge_children: int = Field(
        default=2, ge=1, le=64, description="Kamailio worker processes per transport."
    )
    sip_edge_kamailio: str = Field(default="kamailio", description="The kamailio binary.")

    @field_validator("sip_frame_ms")
    @classmethod
    def _sip_tick(cls, value: int) -> int:
        if value not in (20, 40):
            raise ValueError(f"must be 20 or 40 (ms), got {value}")
        return value

    @field_validator("asr_language", mode="before")
    @classmethod
    def _none_language(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"", "auto", "none"}:
            return None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the TOML file, which is passed in as init kwargs by load_settings.
        return env_settings, init_settings


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, then ``config_file`` (TOML), then env; ``overrides`` win over all."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {config_file}") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        values = values.get("voiceagent", values)
    try:
        settings = Settings(**values)
        if overrides:
            settings = settings.model_copy(update=overrides)
            Settings.model_validate(settings.model_dump())
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    return settings


def _describe(exc: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
    return "invalid settings: " + "; ".join(problems)
