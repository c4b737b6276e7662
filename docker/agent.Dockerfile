# syntax=docker/dockerfile:1
# fedsynth bank agent image (runs on the bank's own host). Build from the repository root:
#   docker build -f docker/agent.Dockerfile -t fedsynth-agent .

# ---- build stage: production dependencies only; better-sqlite3 may need node-gyp (python3, make, g++) ----
FROM node:20-bookworm AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --omit=optional skips @tensorflow/tfjs-node(-gpu), which download libtensorflow at install time.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime stage: slim, no compilers, non-root ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    FEDSYNTH_LOG_FORMAT=json \
    FEDSYNTH_STATE_DIR=/var/lib/fedsynth/state
WORKDIR /app
RUN groupadd --system --gid 10001 fedsynth \
 && useradd --system --uid 10001 --gid fedsynth --home-dir /var/lib/fedsynth --shell /usr/sbin/nologin fedsynth \
 && mkdir -p /var/lib/fedsynth/keys /var/lib/fedsynth/state \
 && chown -R fedsynth:fedsynth /var/lib/fedsynth \
 && chmod 0700 /var/lib/fedsynth/keys
COPY --from=deps /app/node_modules ./node_modules
# The CLI entry (cli/commands/index.ts) imports every command statically, coordinator included,
# so the coordinator folder has to ship here too until the CLI loads commands lazily.
COPY package.json ./
COPY bin ./bin
COPY cli ./cli
COPY coordinator ./coordinator
COPY client-node ./client-node
COPY protocol ./protocol
COPY shared ./shared
COPY docker/agent-healthcheck.mjs ./docker/agent-healthcheck.mjs
USER fedsynth
VOLUME ["/var/lib/fedsynth/keys", "/var/lib/fedsynth/state"]
# The agent serves no port: the check verifies the agent process (PID 1) is alive and its state dir is
# writable, and enforces a fresh heartbeat file once the agent writes one (see docker/README.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "docker/agent-healthcheck.mjs"]
ENTRYPOINT ["node", "bin/fedsynth.mjs"]
CMD ["agent", \
     "--coordinator", "http://coordinator:7600", \
     "--data", "/data/bank.csv", \
     "--schema", "/etc/fedsynth/schema.json", \
     "--key", "/var/lib/fedsynth/keys/bank.json", \
     "--coordinator-key", "/etc/fedsynth/coordinator.key", \
     "--state-dir", "/var/lib/fedsynth/state"]
