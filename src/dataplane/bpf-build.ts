// BPF objects straight from the build, compiled first when missing or older than their
// sources (the build's own clang command, scripts/build-bpf.sh), so `lbctl load` works right
// after `npm run setup` even when bpf/ changed since.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { LbError } from "../lib/errors.js";
import { bpfObjectPath, packageRoot } from "../lib/paths.js";

function newestSource(dir: string): number {
  return Math.max(
    ...readdirSync(dir)
      .filter((f) => f.endsWith(".h") || f.endsWith(".c"))
      .map((f) => statSync(join(dir, f)).mtimeMs),
  );
}

/** Path of build/bpf/NAME.bpf.o, rebuilt first when stale. progress gets one line when it builds. */
export function freshBpfObject(name: string, progress: (line: string) => void): string {
  const root = packageRoot();
  const object = bpfObjectPath(name);
  const source = join(root, "bpf", `${name}.bpf.c`);
  const stale = !existsSync(object) || statSync(object).mtimeMs < newestSource(join(root, "bpf"));
  if (!stale) return object;
  progress(`compiling ${source} (object missing or older than bpf/)`);
  try {
    execFileSync("bash", [join(root, "scripts", "build-bpf.sh"), join(root, "build", "bpf"), source], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (cause) {
    throw new LbError("LB_ERR_LOAD", `cannot compile ${source}`, {
      hint: "run npm run setup to install clang and libbpf-dev",
      cause,
    });
  }
  return object;
}
