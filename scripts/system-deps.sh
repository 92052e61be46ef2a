#!/usr/bin/env bash
# Debian packages voiceagent needs: Python with venv; with --test also the real peers the integration
# tests talk to: Chromium (WebRTC calls and the console, headless), Kamailio (the SIP edge), SIPp and
# baresip (SIP user agents) and sipvicious (the extension-enumeration probe). Installs only what is
# missing.
set -euo pipefail
missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v kamailio >/dev/null || missing+=(kamailio kamailio-extra-modules kamailio-tls-modules)
  command -v sipp >/dev/null || missing+=(sip-tester)
  command -v baresip >/dev/null || missing+=(baresip)
  command -v sipvicious_svwar >/dev/null || command -v svwar >/dev/null || missing+=(sipvicious)
fi
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"voiceagent needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY
