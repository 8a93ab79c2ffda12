#!/usr/bin/env bash
# `npm test`: type-checks, then runs every test with the services cluster mode and the
# page need. Redis and Chromium are installed, started and stopped here (.ci/services.sh)
# unless SONOFS_TEST_REDIS_URL says they already run. Extra arguments go to egg-bin
# (`npm test -- test/lib/store.test.ts`).
set -uo pipefail
cd "$(dirname "$0")/.."
npm run typecheck || exit 1
if [ -z "${SONOFS_TEST_REDIS_URL:-}" ]; then
  . .ci/services.sh
  trap ci_services_stop EXIT
  ci_services_start || exit 1
fi
npx egg-bin test --timeout 120000 "$@"
