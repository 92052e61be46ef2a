#!/usr/bin/env bash
# The servers the integration tests talk to: PostgreSQL (127.0.0.1:5432, database "test") and Redis
# (127.0.0.1:6379). Installs them from Debian if missing and starts them if they are not running;
# leaves running ones alone. Set VOICEAGENT_SKIP_SERVICES=1 to manage them yourself.
set -euo pipefail
[ "${VOICEAGENT_SKIP_SERVICES:-0}" = 1 ] && { echo "services: skipped"; exit 0; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
  echo "services: installing ${missing[*]}"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "services: starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
if ! port_open 6379; then
  echo "services: starting Redis"
  $sudo mkdir -p /var/lib/redis /var/log/redis
  $sudo redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/voiceagent-tests.log
fi
for i in $(seq 1 30); do
  port_open 5432 && port_open 6379 && break
  sleep 1
done
port_open 5432 || { echo "services: PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
port_open 6379 || { echo "services: Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }

# The tests use a database named "test"; trust auth on loopback as a fresh Debian install has it
# for the postgres user through the socket.
if ! psql -h 127.0.0.1 -U postgres -lqt 2>/dev/null | cut -d '|' -f 1 | grep -qw test; then
  if command -v runuser >/dev/null && [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- createdb test 2>/dev/null || true
  else
    createdb -h 127.0.0.1 -U postgres test 2>/dev/null || true
  fi
fi
echo "services: PostgreSQL and Redis are up"
