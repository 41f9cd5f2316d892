# syntax=docker/dockerfile:1
#
# One image for the API, the worker, the one-shot migrate job and the importer; the
# compose file picks the command. Build: docker build -t ingest:local .
#   API (default): node apps/api/dist/index.js
#   worker:        node apps/worker/dist/index.js
#   migrate:       node packages/db/dist/migrate.js
#   import:        node apps/importer/dist/cli/import.js DIR (DIR mounted into the container)
#
# Node runs directly as the container's main process (no `npm start`: npm does not pass
# signals on reliably). The apps handle SIGTERM themselves and exit 0.

ARG NODE_VERSION=24

# ---------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# ---------------------------------------------------------------------------------
# Package manifests only, so the dependency layers are reused until one of them
# changes. List every workspace here (apps/*, packages/*) when one is added.
FROM base AS manifests
COPY package.json package-lock.json ./
COPY apps/api/package.json apps/api/
COPY apps/importer/package.json apps/importer/
COPY apps/worker/package.json apps/worker/
COPY packages/catalog/package.json packages/catalog/
COPY packages/config/package.json packages/config/
COPY packages/db/package.json packages/db/
COPY packages/jobs/package.json packages/jobs/
COPY packages/redis/package.json packages/redis/
COPY packages/runtime/package.json packages/runtime/
COPY packages/telemetry/package.json packages/telemetry/

# ---------------------------------------------------------------------------------
# All dependencies (esbuild, turbo and typescript are devDependencies).
# `npm install`, not `npm ci`: the lockfile is written without other platforms'
# optional packages, which `npm ci` can reject; `npm install` still follows it.
FROM manifests AS deps
RUN --mount=type=cache,target=/root/.npm \
    npm install --no-audit --no-fund

# ---------------------------------------------------------------------------------
FROM deps AS build
ENV TURBO_TELEMETRY_DISABLED=1
COPY . .
RUN npm run build

# ---------------------------------------------------------------------------------
# Production dependencies only. esbuild bundles the @ingest/* workspaces into dist/
# but leaves npm packages as imports, so the runtime still needs these node_modules.
FROM manifests AS prod-deps
RUN --mount=type=cache,target=/root/.npm \
    npm install --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------
FROM base AS runtime
ENV NODE_ENV=production \
    PORT=3000
# The repository layout is kept under /app: the workspace package.json files
# ("type": "module", node_modules/@ingest/* links) come with prod-deps, and migrate.js
# finds its SQL at ../../../migrations, i.e. /app/migrations.
# Files stay owned by root (read-only for the app); the process runs as `node`.
COPY --from=prod-deps /app ./
COPY --from=build /app/apps/api/dist ./apps/api/dist
COPY --from=build /app/apps/worker/dist ./apps/worker/dist
COPY --from=build /app/apps/importer/dist ./apps/importer/dist
COPY --from=build /app/packages/db/dist ./packages/db/dist
COPY --from=build /app/migrations ./migrations

USER node
EXPOSE 3000
STOPSIGNAL SIGTERM
CMD ["node", "apps/api/dist/index.js"]
