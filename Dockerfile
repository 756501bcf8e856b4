# One image for every Tessera process; the command picks which:
#   node --import tsx coordinator/main.ts      the coordinator
#   node --import tsx node/main.ts             a node (the default)
#   node --import tsx scripts/compose-init.ts  one-shot cluster bootstrap (docker-compose.yml `init`)
# All configuration comes from TESSERA_* environment variables (node/config.ts, coordinator/config.ts).
FROM node:20-slim

# openssl: scripts/compose-init.ts issues the cluster's TLS certificates with it (Node's crypto module
# makes keys but cannot issue X.509 certificates). node:20-slim does not ship the openssl command.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first, so source edits do not reinstall them. tsx (the TypeScript loader) is a runtime
# dependency; the dev dependencies (vitest, testcontainers, typescript) stay out of the image.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY tsconfig.json ./
COPY core ./core
COPY contract ./contract
COPY runtime ./runtime
COPY node ./node
COPY coordinator ./coordinator
COPY sdk ./sdk
COPY scripts ./scripts

# The services run unprivileged (uid 1000, the image's `node` user); only `init` runs as root, to
# create the volumes' contents and hand them to this user.
USER node
EXPOSE 7400 7701 7702 7703
CMD ["node", "--import", "tsx", "node/main.ts"]
