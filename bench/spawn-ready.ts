// Starts a bench helper process that prints a line beginning "ready" once it is set up (bound,
// attached), and waits for that line: a helper that exits first or stays silent for timeoutMs is
// killed and reported with its stderr.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export async function spawnReady(
  cmd: string,
  args: readonly string[],
  what: string,
  opts: { stdin?: "pipe" | "ignore"; timeoutMs?: number } = {},
): Promise<ChildProcess> {
  const child = spawn(cmd, [...args], { stdio: [opts.stdin ?? "ignore", "pipe", "pipe"] });
  const { stdout, stderr } = child;
  if (!stdout || !stderr) throw new Error(`${what}: spawned without output pipes`);
  let err = "";
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      resolve(false);
    }, opts.timeoutMs ?? 5000);
    createInterface({ input: stdout }).on("line", (line) => {
      if (line.startsWith("ready")) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    child.kill("SIGKILL");
    throw new Error(`${what} did not start: ${err.trim()}`);
  }
  return child;
}
