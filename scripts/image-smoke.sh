#!/usr/bin/env bash
# Checks what the Dockerfile builds without a Docker engine: lays out the image's /app exactly as
# the Dockerfile's COPY lines do (from the committed files), installs production dependencies with
# the same `npm ci --omit=dev`, then runs the image's CMD and HEALTHCHECK commands against it
# (embedded database, as the image does without DATABASE_URL) and stops it with SIGTERM.
# Usage: bash scripts/image-smoke.sh   (uses the Node 22 on PATH; `npm run image:smoke` puts it there)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
app=$(mktemp -d /tmp/guardian-image.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$app"' EXIT
pid=

# Stage 1 (deps): the manifests, then npm ci --omit=dev.
mkdir -p "$app/sdk" "$app/guardian" "$app/supabase" "$app/dashboard"
cp package.json package-lock.json .npmrc "$app/"
cp sdk/package.json "$app/sdk/"; cp guardian/package.json "$app/guardian/"; cp dashboard/package.json "$app/dashboard/"
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >/dev/null)
# Stage 2: the COPY lines (tracked files only, as a clean clone has them).
# (cp -p: Docker's COPY keeps mtimes, which the bundled CLI's manifest checks.)
git ls-files -z sdk guardian rules supabase/migrations supabase/seed.sql supabase/test-shim.sql scripts/migrate.ts | (cd "$root" && xargs -0 cp -p --parents -t "$app")
# Stage 1b (sdk-build): sdk/dist, built with the full dev dependencies (here: the repository's).
node "$root/sdk/scripts/build.ts"
cp -r "$root/sdk/dist" "$app/sdk/dist"
# Stage 1b, continued: the bundled CLI, built from the same files (the image's `guardian …`).
node "$root/guardian/scripts/build-cli.ts" --outdir "$app/guardian/dist/cli" 2>/dev/null
# Stage 2 (dashboard): dashboard/dist, built by Vite (here: the repository's build, made by npm ci's prepare).
[ -f "$root/dashboard/dist/index.html" ] || (cd "$root" && npm run -s build -w dashboard)
cp -r "$root/dashboard/dist" "$app/dashboard/dist"
if [ -e "$app/node_modules/node" ] || [ -e "$app/node_modules/vitest" ]; then
  echo "image-smoke: FAILED: dev dependencies were installed by npm ci --omit=dev" >&2; exit 1
fi

port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
cd "$app"
GUARDIAN_DATA_DIR="$app/.data" RULES_FILE=rules/guardian.yaml PORT=$port HOST=127.0.0.1 NODE_ENV=production \
  node guardian/bin/guardian.js start >"$app/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if PORT=$port node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 8787) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if [ "${ok:-}" != 1 ]; then echo "image-smoke: FAILED: HEALTHCHECK never passed"; cat "$app/out.log"; exit 1; fi
head -n 3 "$app/out.log"
# A short command in the image answers from the bundle, with production dependencies only.
version=$(node guardian/bin/guardian.js --version)
case "$version" in *"bundled CLI"*) ;; *) echo "image-smoke: FAILED: guardian --version says: $version (expected the bundled CLI)"; exit 1;; esac
node guardian/bin/guardian.js validate rules/guardian.yaml >/dev/null
echo "image-smoke: $version; validate OK"
kill -TERM "$pid"
set +e; wait "$pid"; code=$?; set -e
pid=
if [ "$code" != 0 ]; then echo "image-smoke: FAILED: exit code $code after SIGTERM"; cat "$app/out.log"; exit 1; fi
echo "image-smoke: OK (production dependencies only, HEALTHCHECK passed, SIGTERM → exit 0)"
