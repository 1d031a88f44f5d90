// Paths of build products relative to the package root, the same from src/ (tsx) and from
// dist/src/ (compiled): the root is found by walking up to Caplance's package.json.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE_NAME = "caplance";

let root: string | undefined;

function isPackageRoot(dir: string): boolean {
  const manifest = join(dir, "package.json");
  if (!existsSync(manifest)) return false;
  try {
    const parsed = JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown };
    return parsed.name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

/** The directory holding Caplance's package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (isPackageRoot(dir)) return (root = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package root of ${PACKAGE_NAME} not found above ${import.meta.url}`);
    dir = parent;
  }
}

/** A compiled BPF object: bpfObjectPath("balancer") is build/bpf/balancer.bpf.o. */
export function bpfObjectPath(name: string): string {
  return join(packageRoot(), "build", "bpf", `${name}.bpf.o`);
}

/**
 * libcaplance as node-gyp leaves it. gyp's make generator names a shared_library target
 * `caplance.so` in build/Release (no "lib" prefix); the other names cover other generators and
 * Debug builds. $CAPLANCE_NATIVE_LIB overrides. Returns the first that exists, else the
 * canonical one (so the error names where it was expected).
 */
export function nativeLibraryPath(): string {
  const override = process.env["CAPLANCE_NATIVE_LIB"];
  if (override !== undefined && override !== "") return override;
  const base = join(packageRoot(), "build");
  const candidates = [
    join(base, "Release", "caplance.so"),
    join(base, "Release", "libcaplance.so"),
    join(base, "Release", "lib.target", "libcaplance.so"),
    join(base, "Debug", "caplance.so"),
    join(base, "Debug", "libcaplance.so"),
  ];
  return candidates.find((p) => existsSync(p)) ?? join(base, "Release", "caplance.so");
}

/** Caplance's version from its package.json, "unknown" when it cannot be read. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
