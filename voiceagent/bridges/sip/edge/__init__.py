"""The SIP edge: Kamailio in front of the pjsua2 media processes, configured and supervised by voiceagent.

Hostile or malformed SIP meets Kamailio (``sanity``, ``pike``, an SDP check) before pjsip ever parses
it; ``dispatcher`` spreads calls over the media processes and routes around dead ones; ``uac``
registers to trunks; ``tls`` uses the system's OpenSSL. RTP goes straight to the media processes.
See docs/sip-edge.md.
"""

from voiceagent.bridges.sip.edge.edge_config import (
    EdgeConfig,
    Registration,
    parse_hostport,
)
from voiceagent.bridges.sip.edge.kamailio_cfg import (
    EdgeFiles,
    render_dispatcher_list,
    render_kamailio_cfg,
    write_edge_files,
)
from voiceagent.bridges.sip.edge.sip_probe import HEALTH_USER_AGENT, options_ping
from voiceagent.bridges.sip.edge.supervisor import SipEdge, start_sip_edge

__all__ = [
    "HEALTH_USER_AGENT",
    "EdgeConfig",
    "EdgeFiles",
    "Registration",
    "SipEdge",
    "options_ping",
    "parse_hostport",
    "render_dispatcher_list",
    "render_kamailio_cfg",
    "start_sip_edge",
    "write_edge_files",
]
