#!/usr/bin/env bash
# The project's test command (README: `npm test`). Makes sure what the tests need is there —
# PostgreSQL on 127.0.0.1:5432 and Debian's Chromium for the browser tests — then type-checks,
# lints and runs every test. Database tests are never skipped: no database means a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST_CHECK=${PGHOST_CHECK:-127.0.0.1}
if ! pg_isready -h "$PGHOST_CHECK" -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "test: PostgreSQL is not answering on $PGHOST_CHECK:5432; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h "$PGHOST_CHECK" -p 5432 -q && break; sleep 1; done
  fi
  if ! pg_isready -h "$PGHOST_CHECK" -p 5432 -q; then
    echo "test: FAILED: PostgreSQL is unreachable on $PGHOST_CHECK:5432. Start it (or set DATABASE_URL) and retry." >&2
    exit 1
  fi
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "test: FAILED: /usr/bin/chromium is missing; install Debian's chromium package (apt-get install chromium)." >&2
    exit 1
  fi
fi

echo "test: type-check"; npm run -s typecheck
echo "test: lint"; npm run -s lint
echo "test: vitest"
report=$(mktemp /tmp/vitest-report.XXXXXX.json)
status=0
vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
if [ $# -eq 0 ]; then node scripts/test-summary.ts "$report" || status=1; fi
rm -f "$report"
exit $status
