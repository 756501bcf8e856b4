#!/usr/bin/env bash
# Everything test/compose/compose.test.ts needs from Docker, made ahead of it: an engine
# (scripts/docker-engine.sh), the base image node:20-slim (scripts/docker-base-image.sh) and the
# image the test runs, ${TESSERA_IMAGE:-tessera:compose-test} (the test's tag), built from the
# Dockerfile. .ci/run starts the engine first, then runs this in the background so the slow part
# (debootstrap, the image's npm ci and build) overlaps with npm ci and the rest of the suite.
# The test does not rely on it: it takes the same lock (/tmp/tessera-compose-image.lock), so it
# waits while this builds, and then makes the same image itself, from docker's build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/docker-engine.sh
exec 9>/tmp/tessera-compose-image.lock
flock 9
scripts/docker-base-image.sh
docker build --network=host -t "${TESSERA_IMAGE:-tessera:compose-test}" . >/dev/null
echo "docker-prepare: ${TESSERA_IMAGE:-tessera:compose-test} built"
