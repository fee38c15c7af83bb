# The guardian image. Runs the same command as README's `npm start` (whose script `exec`s it), but
# node itself, never npm, as PID 1, so SIGTERM reaches the guardian directly:
#   node guardian/bin/guardian.js start
# With no DATABASE_URL / SUPABASE_URL it uses the embedded database in /app/.data (a volume).
# Node 22.18+ runs the guardian's TypeScript sources directly (type stripping), so the guardian has
# no build step; the SDK it imports is resolved through its exports map to sdk/dist, built by tsc in
# stage 1b, and the dashboard (/admin) is built by Vite in stage 2; only their dist/ folders are copied.

# 1. Production dependencies only (the `node` dev dependency, test tools and peers stay out).
FROM node:22.23.3-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY sdk/package.json sdk/package.json
COPY guardian/package.json guardian/package.json
COPY dashboard/package.json dashboard/package.json
# --ignore-scripts: the root `prepare` (the SDK and dashboard builds) needs the dev dependencies; 1b and 2 build them.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# 1b. The SDK's dist/ (what its exports map points Node and Vite at), built by tsc, which needs the
# dev dependencies (TypeScript and the peers' types); only dist/ leaves this stage.
FROM node:22.23.3-bookworm-slim AS sdk-build
WORKDIR /app
COPY package.json package-lock.json .npmrc tsconfig.json ./
COPY sdk/package.json sdk/package.json
COPY guardian/package.json guardian/package.json
COPY dashboard/package.json dashboard/package.json
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY sdk ./sdk
RUN node sdk/scripts/build.ts
# The bundled CLI (esbuild, a dev dependency): `docker exec … guardian flags list` answers fast.
# bin/guardian.js uses it only while the sources it was built from are unchanged (COPY keeps
# their mtimes), else it runs the sources; the daemon always runs the sources.
COPY guardian ./guardian
RUN node guardian/scripts/build-cli.ts

# 2. The dashboard's static files (Vite is a dev dependency, so it is built here and left behind).
FROM node:22.23.3-bookworm-slim AS dashboard
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY sdk ./sdk
COPY --from=sdk-build /app/sdk/dist ./sdk/dist
COPY guardian/package.json guardian/package.json
COPY dashboard ./dashboard
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build -w dashboard

# 3. Runtime: sources, migrations, rules; non-root.
FROM node:22.23.3-bookworm-slim
ENV NODE_ENV=production \
    GUARDIAN_DATA_DIR=/app/.data \
    RULES_FILE=rules/guardian.yaml \
    PORT=8787 \
    HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY sdk ./sdk
COPY --from=sdk-build /app/sdk/dist ./sdk/dist
COPY guardian ./guardian
COPY --from=sdk-build /app/guardian/dist/cli ./guardian/dist/cli
COPY --from=dashboard /app/dashboard/dist ./dashboard/dist
COPY supabase/migrations ./supabase/migrations
COPY supabase/seed.sql supabase/test-shim.sql ./supabase/
COPY rules ./rules
# The migration step (compose.yaml's `migrate` service: node scripts/migrate.ts --shim --seed).
COPY scripts/migrate.ts ./scripts/
RUN mkdir -p /app/.data && chown -R node:node /app/.data
USER node
VOLUME ["/app/.data"]
EXPOSE 8787
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8787) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The guardian handles SIGTERM itself: it finishes the cycle in flight and exits 0.
STOPSIGNAL SIGTERM
CMD ["node", "guardian/bin/guardian.js", "start"]
