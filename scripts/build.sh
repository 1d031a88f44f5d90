#!/usr/bin/env bash
# Native and BPF build (node-gyp, incremental through make) and the TypeScript build (tsc,
# incremental). Quiet when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# binding.gyp lists sources by glob at configure time: configure again when the set changes.
sources=$(ls -1 native/*.c bpf/*.c bpf/*.h bench/*.bpf.c 2>/dev/null | sha1sum | cut -c1-40)
if [ ! -f build/Makefile ] || [ binding.gyp -nt build/Makefile ] || [ "$(cat build/.sources 2>/dev/null)" != "$sources" ]; then
  echo "build: node-gyp configure"
  npx --no-install node-gyp configure --loglevel=error >/dev/null
  echo "$sources" >build/.sources
fi
npx --no-install node-gyp build --loglevel=error >build/.last-build.log 2>&1 || {
  cat build/.last-build.log >&2
  echo "build: node-gyp build failed" >&2
  exit 1
}
npx --no-install tsc -p tsconfig.json --incremental --tsBuildInfoFile build/tsc.tsbuildinfo
