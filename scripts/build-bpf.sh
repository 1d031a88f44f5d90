#!/usr/bin/env bash
# Compiles every BPF program (bpf/*.bpf.c, bench/*.bpf.c) into OUTDIR. The one clang command
# of the project: node-gyp runs it, and `lbctl load` runs it when an object is older than its
# sources. Usage: build-bpf.sh OUTDIR [FILE.bpf.c ...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-bpf.sh OUTDIR [FILE.bpf.c ...]}
shift
mkdir -p "$out"
arch_inc=/usr/include/$(uname -m)-linux-gnu
shopt -s nullglob # bench/ may hold no BPF program yet
sources=("$@")
[ ${#sources[@]} -gt 0 ] || sources=("$here"/bpf/*.bpf.c "$here"/bench/*.bpf.c)
for src in "${sources[@]}"; do
  obj="$out/$(basename "${src%.c}").o"
  clang -target bpf -O2 -g -Wall -Werror -I"$here/bpf" -I"$arch_inc" -c "$src" -o "$obj.tmp"
  mv "$obj.tmp" "$obj"
done
touch "$out/.stamp"
