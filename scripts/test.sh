#!/usr/bin/env bash
# `npm test`: set-up, lint and format check, then every test layer. The packet and lab layers
# need root (BPF_PROG_TEST_RUN, XDP attach, namespaces): they run as root and are not skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "test: lint"
npm run --silent lint
[ "$(id -u)" -eq 0 ] || { echo "test: the BPF and lab layers need root (run: sudo npm test)" >&2; exit 1; }
layers=(unit abi bpf lab)
files=()
for layer in "${layers[@]}"; do
  for f in dist/test/"$layer"/*.test.js; do [ -e "$f" ] && files+=("$f"); done
done
echo "test: ${#files[@]} test files (${layers[*]})"
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
