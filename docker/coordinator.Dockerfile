# syntax=docker/dockerfile:1
# fedsynth coordinator image. Build from the repository root:
#   docker build -f docker/coordinator.Dockerfile -t fedsynth-coordinator .

# ---- build stage: production dependencies only; better-sqlite3 may need node-gyp (python3, make, g++) ----
FROM node:20-bookworm AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --omit=optional skips @tensorflow/tfjs-node(-gpu), which download libtensorflow at install time;
# the CLI falls back to the pure-JS/WASM tfjs backends that are regular dependencies.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime stage: slim, no compilers, non-root ----
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    FEDSYNTH_LOG_FORMAT=json \
    FEDSYNTH_PORT=7600
WORKDIR /app
RUN groupadd --system --gid 10001 fedsynth \
 && useradd --system --uid 10001 --gid fedsynth --home-dir /var/lib/fedsynth --shell /usr/sbin/nologin fedsynth \
 && mkdir -p /var/lib/fedsynth/keys /var/lib/fedsynth/state \
 && chown -R fedsynth:fedsynth /var/lib/fedsynth \
 && chmod 0700 /var/lib/fedsynth/keys
COPY --from=deps /app/node_modules ./node_modules
# Source stays root-owned and read-only to the service user. The CLI runs TypeScript through tsx
# (a production dependency), so the .ts sources are the runtime; protocol/schema/fedsynth.proto is
# read at load time by protocol/codec.ts.
COPY package.json ./
COPY bin ./bin
COPY cli ./cli
COPY coordinator ./coordinator
COPY client-node ./client-node
COPY protocol ./protocol
COPY shared ./shared
USER fedsynth
EXPOSE 7600
VOLUME ["/var/lib/fedsynth/keys", "/var/lib/fedsynth/state"]
# /healthz is served by the coordinator on its socket.io port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.FEDSYNTH_PORT||'7600')+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/fedsynth.mjs"]
CMD ["coordinator", "--host", "0.0.0.0", "--port", "7600", \
     "--schema", "/etc/fedsynth/schema.json", \
     "--state-dir", "/var/lib/fedsynth/state", \
     "--key", "/var/lib/fedsynth/keys/coordinator.json", \
     "--allow-list", "/etc/fedsynth/allow.json"]
