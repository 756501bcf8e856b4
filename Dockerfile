# One image for every Tessera process; the command picks which (compiled JavaScript, no TypeScript
# loader at run time):
#   node dist/coordinator/main.js        the coordinator
#   node dist/node/main.js               a node (the default)
#   node dist/scripts/compose-init.js    one-shot cluster bootstrap (docker-compose.yml `init`)
# All configuration comes from TESSERA_* environment variables (node/config.ts, coordinator/config.ts).

# Build stage: every dependency (TypeScript is a dev dependency), then `npm run build` into dist/, then
# the dev dependencies are pruned so the run stage copies only what runs.
FROM node:20-slim AS build
# node-gyp (below) compiles against the headers the image ships (<prefix>/include/node, as
# node:20-slim has them) instead of downloading them from nodejs.org.
ENV npm_config_nodedir=/usr/local
WORKDIR /app
# Dependencies first, so source edits do not download them again. --ignore-scripts: the package's
# own `prepare` (the build) needs the sources, copied below, and the build (tsc) needs no dependency's
# install script. `npm rebuild` runs the install scripts after `npm prune --omit=dev`, so only the
# runtime dependencies' (their native bindings: classic-level, secp256k1, pkcs11js): a dev dependency's script
# may need a C compiler, which node:20-slim lacks (testcontainers -> ssh2 -> cpu-features fails
# `npm rebuild` there; `npm ci` would have let that optional one fail). stubs/: the local stand-in
# for msgpackr's optional native decoder (package.json `overrides`) that node_modules/msgpackr-extract
# links to; the run stage copies it too, or that link would dangle.
COPY package.json package-lock.json ./
COPY stubs ./stubs
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY core ./core
COPY contract ./contract
COPY runtime ./runtime
COPY node ./node
COPY coordinator ./coordinator
COPY sdk ./sdk
COPY scripts ./scripts
# What runs, gathered in /runtime for the run stage's one COPY (node_modules/msgpackr-extract is a
# relative link into stubs/, so they move together).
# pkcs11js (the pkcs11 KEK provider's binding, node/store/kek-pkcs11.ts) ships no prebuilt binary:
# `npm rebuild` compiles it with node-gyp, which needs python3, make and a C++ compiler. They are
# installed in this last step of the build stage only: with the vfs storage driver (CI) every later
# layer would copy them again, and the run stage takes only the built /runtime.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && npm run build \
 && npm prune --omit=dev && npm rebuild && npm cache clean --force \
 && mkdir /runtime && mv package.json package-lock.json stubs node_modules dist /runtime/

FROM node:20-slim

# openssl: scripts/compose-init.ts issues the cluster's TLS certificates with it (Node's crypto module
# makes keys but cannot issue X.509 certificates). node:20-slim does not ship the openssl command.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production
# One COPY --from, not one per directory: with the vfs storage driver (dockerd --storage-driver=vfs,
# as in CI) each COPY --from copies the whole build stage, about 13 s, even when it is cached.
COPY --from=build /runtime ./

# The services run unprivileged (uid 1000, the image's `node` user); only `init` runs as root, to
# create the volumes' contents and hand them to this user.
USER node
EXPOSE 7400 7701 7702 7703
CMD ["node", "dist/node/main.js"]
