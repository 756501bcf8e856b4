#!/usr/bin/env bash
# Make sure the Dockerfile's base image, node:20-slim, exists in the local engine, without pulling:
# when `docker image inspect node:20-slim` fails, build a stand-in locally and `docker import` it
# under that exact name, so the project's Dockerfile builds unmodified where no registry is reachable.
#
# The stand-in: Debian bookworm (`debootstrap --variant=minbase`, from the host's Debian mirror), the
# host's own Node.js 20 binary, its C headers and npm (the Dockerfile runs `npm ci`, and node-gyp), the user and group `node`
# (uid/gid 1000, home /home/node: the Dockerfile's `USER node`, as in the official image) and apt
# sources for that mirror (the run stage apt-installs openssl). It also trusts what the host trusts:
# the host's CA bundle is copied to /etc/ssl/certs/ca-certificates.crt and npm's global config points
# cafile at it (on a machine whose HTTPS goes through an intercepting proxy, `npm ci` needs that).
# Limits: the Node version is the host's (checked to be 20.x), not a pinned upstream build.
#
# Concurrent runs (.ci/run in the background and the compose test) are serialized with flock: the
# second waits for the first and then finds the image. Prints `present` or `built`.
# Env: TESSERA_DEBIAN_MIRROR (default: the first Debian URI in /etc/apt/sources.list.d/debian.sources
# or /etc/apt/sources.list, else http://deb.debian.org/debian), TESSERA_BASE_IMAGE_LOG (debootstrap's
# output; default /tmp/tessera-base-image.log), TESSERA_NODE (the node binary; default: `node` on PATH).
set -euo pipefail

IMAGE=node:20-slim
LOG="${TESSERA_BASE_IMAGE_LOG:-/tmp/tessera-base-image.log}"
LOCK=/tmp/tessera-base-image.lock

if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo present; exit 0; fi

exec 9>"$LOCK"
flock 9
if docker image inspect "$IMAGE" >/dev/null 2>&1; then echo present; exit 0; fi

fail() { echo "docker-base-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root (uid $(id -u))"
command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is not installed (apt-get install debootstrap)"

NODE_BIN="$(readlink -f "${TESSERA_NODE:-$(command -v node)}")"
NODE_VERSION="$("$NODE_BIN" -p 'process.versions.node')"
case "$NODE_VERSION" in 20.*) ;; *) fail "the host's node ($NODE_BIN) is $NODE_VERSION, not 20.x" ;; esac
NODE_PREFIX="$(dirname "$(dirname "$NODE_BIN")")"
NPM_DIR="$NODE_PREFIX/lib/node_modules/npm"
[ -f "$NPM_DIR/bin/npm-cli.js" ] || fail "npm not found at $NPM_DIR"

mirror() {
  if [ -n "${TESSERA_DEBIAN_MIRROR:-}" ]; then echo "$TESSERA_DEBIAN_MIRROR"; return; fi
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR="$(mirror)"

ROOTFS="$(mktemp -d /tmp/tessera-rootfs-XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
# mktemp makes the directory 0700, and it becomes the image's /: uid 1000 could not reach anything.
chmod 0755 "$ROOTFS"

echo "docker-base-image: debootstrap bookworm from $MIRROR (log: $LOG)" >&2
if ! debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >>"$LOG" 2>&1; then
  tail -n 20 "$LOG" >&2
  fail "debootstrap failed"
fi

# Node and npm where the official image has them.
install -D -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
mkdir -p "$ROOTFS/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
# Node's C headers, where the official image has them: node-gyp builds native addons without a
# prebuilt binary (pkcs11js) against <prefix>/include/node instead of downloading the headers from
# nodejs.org, which a build behind a proxy may not reach.
[ -d "$NODE_PREFIX/include/node" ] || fail "node's headers not found at $NODE_PREFIX/include/node"
mkdir -p "$ROOTFS/usr/local/include"
cp -a "$NODE_PREFIX/include/node" "$ROOTFS/usr/local/include/node"

# The host's CA bundle, and npm told to use it (npm's global config for the /usr/local prefix).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
  mkdir -p "$ROOTFS/usr/local/etc"
  echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$ROOTFS/usr/local/etc/npmrc"
fi

# User and group node, uid/gid 1000, as in the official image.
chroot "$ROOTFS" groupadd --gid 1000 node
chroot "$ROOTFS" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

# apt sources for the same mirror (debootstrap writes only `bookworm main`; add the updates suite).
cat >"$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
SOURCES

# Smaller image: no package lists or downloaded packages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/tmp/* 2>/dev/null || true

tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'CMD ["node"]' \
  --message "local stand-in for node:20-slim (debootstrap minbase bookworm + host node $NODE_VERSION)" \
  - "$IMAGE" >/dev/null
echo built
