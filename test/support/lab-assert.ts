// Assertions shared by the lab tests: spread of answers over backends, and lbctl succeeding.
import assert from "node:assert/strict";
import type { Lab } from "../../src/lab/lab.js";

/** Share of each name within ±15% of its expected share (weights); no other name answered. */
export function assertSpread(
  byBackend: Record<string, number>,
  expected: Record<string, number>,
  label: string,
): void {
  const total = Object.values(byBackend).reduce((a, b) => a + b, 0);
  const weightSum = Object.values(expected).reduce((a, b) => a + b, 0);
  for (const [name, weight] of Object.entries(expected)) {
    const share = (byBackend[name] ?? 0) / total;
    const want = weight / weightSum;
    assert.ok(
      Math.abs(share - want) <= 0.15 * want,
      `${label}: ${name} got ${(share * 100).toFixed(1)}%, want ${(want * 100).toFixed(1)}% ± 15% (${JSON.stringify(byBackend)})`,
    );
  }
  for (const name of Object.keys(byBackend))
    assert.ok(name in expected, `${label}: unexpected backend ${name}`);
}

/** `lbctl ARGS --socket <the lab's>`, asserting exit 0; its stdout. */
export async function lbctlOk(lab: Lab, args: string[]): Promise<string> {
  const r = await lab.lbctl(args);
  assert.equal(r.code, 0, `lbctl ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}
