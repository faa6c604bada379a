#!/usr/bin/env bash
# Runs every test suite in two mocha processes side by side: about 25 minutes instead of 43 on a
# 2-core machine. The crash, cancel and restart suites spend most of their time waiting out a
# heartbeat or workflow-task timeout after each kill, so they run beside the others instead of
# after them. Each process has its own Temporal dev server, scratch directory, Ceph and btrfs; every
# Kubernetes suite runs in the first one (one cluster, one real node).
#
# The first process prints as it goes; the second's output is kept and printed when both are done,
# then the first one's failures again, so that the tail of a CI log names every failure.
# Fails if either fails. PGOPS_TEST_SERIAL=1 runs everything in one process, as `npm run test:serial`.
# Usage: bash scripts/test-run.sh (from npm test, with the project's Node.js on PATH)
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${PGOPS_TEST_SERIAL:-}" == 1 ]]; then exec mocha 'test/**/*.test.ts'; fi

# The suites that mostly wait: every kill costs a 10 s timeout before another worker takes over.
waiting=(
  test/backup-crash.test.ts
  test/backup-delete-crash.test.ts
  test/archive-crash.test.ts
  test/restore-replicas-crash.test.ts
  test/pitr-crash.test.ts
  test/crash.test.ts
  test/local-activity-crash.test.ts
  test/cancel-steps.test.ts
  test/cancel-pitr.test.ts
  test/temporal-restart.test.ts
  test/scratch-crash.test.ts
  test/temporal-cluster.test.ts
  test/pitr-quiet-primary.test.ts
  # Not waiting, but local-only (no Kubernetes): here they even out the two processes' times.
  test/replica-history.test.ts
  test/restore-timelines.test.ts
  test/drop-pitr-workflow.test.ts
  test/archive-replica.test.ts
  test/pitr-timelines.test.ts
)
others=()
for file in test/*.test.ts; do
  [[ " ${waiting[*]} " == *" $file "* ]] || others+=("$file")
done

side_log=$(mktemp -t pgops-side-tests.XXXXXX)
mocha "${waiting[@]}" >"$side_log" 2>&1 &
side=$!
# Ctrl-C or a CI timeout stops the side process too (its own handlers stop its servers).
trap 'kill -TERM "$side" 2>/dev/null' EXIT

main_log=$(mktemp -t pgops-main-tests.XXXXXX)
mocha "${others[@]}" 2>&1 | tee "$main_log"
main_code=${PIPESTATUS[0]}
wait "$side"
side_code=$?
trap - EXIT

echo
echo "================ the crash, cancel and restart suites (run alongside the others) ================"
cat "$side_log"
rm -f "$side_log"
echo "================================================================================================="
# The first process's failures again, last, where a CI log's tail shows them.
if ((main_code != 0)); then
  echo "================ the first process's failures (printed above as they happened) ================="
  sed -n '/^  [0-9]* failing/,$p' "$main_log"
  echo "================================================================================================="
fi
rm -f "$main_log"
echo "main process: exit ${main_code}; crash, cancel and restart suites: exit ${side_code}"
if ((main_code != 0 || side_code != 0)); then exit 1; fi
