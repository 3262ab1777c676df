# Herald in a container: `docker build -t herald .` then
# `docker run -p 9080:9080 -p 9443:9443 -p 9010:9010/udp -v herald-data:/data herald`.
#
# Three stages on one Debian release, so that the native SQLite driver built in `deps`
# runs in the slim runtime image (same libc, same Node ABI).

# build: every dependency, then the compiled server in dist/ and the web pages in web/dist/.
FROM node:20-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the sources are not here yet (prepare would build nothing), and the
# build needs no native module.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

# deps: only the runtime dependencies. --ignore-scripts skips prepare (no TypeScript here);
# better-sqlite3's own install step (a prebuilt binary or a compile, which needs this full
# image's compiler) is run on its own.
FROM node:20-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3

# runtime: Node, the runtime dependencies, the built server and the bundled web pages; no
# compiler, no sources.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HERALD_DATA_DIR=/data \
    HERALD_HOST=0.0.0.0 \
    HERALD_HTTP_PORT=9080 \
    HERALD_HTTPS_PORT=9443 \
    HERALD_UDP_PORT=9010
RUN groupadd --system herald && useradd --system --gid herald --home-dir /data --no-create-home herald \
    && mkdir /data && chown herald:herald /data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/dist ./web/dist
COPY package.json LICENSE ./
COPY bin ./bin
USER herald
VOLUME /data
EXPOSE 9080 9443 9010/udp
# Node has fetch; the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.HERALD_HTTP_PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "bin/herald.js", "serve"]
