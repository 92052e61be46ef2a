#!/usr/bin/env bash
# Services the integration tests use. None yet: the call log and session memory (Postgres, Redis)
# arrive with their issue, and this script will install and start them if they are not running.
set -euo pipefail
echo "services: none needed yet"
