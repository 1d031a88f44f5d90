#!/usr/bin/env bash
# `npm run bench [-- --json]`: set-up, then the benchmarks (root: BPF_PROG_TEST_RUN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
node dist/bench/run.js "$@"
