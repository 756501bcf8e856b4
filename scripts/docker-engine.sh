#!/usr/bin/env bash
# Make sure a Docker engine answers: when `docker info` fails, start dockerd in the background and wait
# for it. Used by .ci/run and by test/compose/compose.test.ts.
#
# dockerd runs with --storage-driver=vfs (works on any filesystem, also inside a container where
# overlayfs does not), --iptables=false (no packet-filter rules on a shared machine) and --bridge=none
# (no docker0 default bridge). Compose still makes its own project network, a user-defined bridge; with
# --iptables=false no NAT is set up for it, which Tessera does not need: images are built with
# `docker build --network=host`, containers reach each other by name on the project network, and
# published ports are served by docker-proxy on 127.0.0.1.
#
# Prints one line on stdout: `running` (an engine was already up) or `started <pid>` (this script
# started it; the caller may stop it with that pid). Exits non-zero, with the reason on stderr (and the
# last lines of the engine's log), when no engine can be started.
# Env: TESSERA_DOCKERD_LOG (default /tmp/tessera-dockerd.log), TESSERA_DOCKERD_WAIT_S (default 60).
set -euo pipefail

LOG="${TESSERA_DOCKERD_LOG:-/tmp/tessera-dockerd.log}"
WAIT_S="${TESSERA_DOCKERD_WAIT_S:-60}"

if docker info >/dev/null 2>&1; then
  echo running
  exit 0
fi
# One starter at a time (.ci/run and the compose test): the second waits, then finds it running.
exec 9>/tmp/tessera-dockerd.lock
flock 9
if docker info >/dev/null 2>&1; then
  echo running
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: no engine answers (docker info failed) and dockerd is not installed" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "docker-engine: no engine answers (docker info failed) and starting dockerd needs root (uid $(id -u))" >&2
  exit 1
fi

# setsid: the engine outlives this script and is not in the caller's process group (a test runner
# killing its group must not take the engine down half-way through a teardown).
setsid dockerd --storage-driver=vfs --iptables=false --bridge=none >>"$LOG" 2>&1 </dev/null 9>&- &
pid=$!
for _ in $(seq 1 "$((WAIT_S * 4))"); do
  if docker info >/dev/null 2>&1; then
    echo "started $pid"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "docker-engine: dockerd exited at start; the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  sleep 0.25
done
echo "docker-engine: dockerd (pid $pid) did not answer in ${WAIT_S} s; the end of $LOG:" >&2
tail -n 20 "$LOG" >&2
kill "$pid" 2>/dev/null || true
exit 1
