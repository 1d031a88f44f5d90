// vagrant/Vagrantfile parses and validates (`vagrant validate --ignore-provider`: this machine
// has no hypervisor), and its provisioning script is shell-valid. scripts/test.sh installs
// vagrant from apt when it is missing; without it (a developer's unit run) the test is skipped.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { test } from "node:test";

import { packageRoot } from "../../src/lib/paths.js";

const run = promisify(execFile);

async function have(cmd: string): Promise<boolean> {
  try {
    await run(cmd, ["--version"], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

test("vagrant validate accepts vagrant/Vagrantfile", async (t) => {
  if (!(await have("vagrant"))) {
    t.skip("vagrant is not installed (scripts/test.sh installs it as root)");
    return;
  }
  // The machine state (.vagrant/) goes to a temporary directory, not into the checkout.
  const dot = mkdtempSync(join(tmpdir(), "caplance-vagrant-"));
  try {
    const r = await run("vagrant", ["validate", "--ignore-provider"], {
      cwd: join(packageRoot(), "vagrant"),
      env: {
        ...process.env,
        VAGRANT_DOTFILE_PATH: dot,
        VAGRANT_CHECKPOINT_DISABLE: "1",
        VAGRANT_NO_COLOR: "1",
      },
      timeout: 120_000,
    });
    assert.match(r.stdout, /Vagrantfile validated successfully/);
    for (const vm of ["backend1", "backend2", "backend3", "balancer", "client"])
      assert.match(r.stdout, new RegExp(`${vm}:`), `machine ${vm} defined`);
  } finally {
    rmSync(dot, { recursive: true, force: true });
  }
});

test("scripts/provision-vm.sh and scripts/lab.sh are valid bash", async () => {
  for (const script of ["provision-vm.sh", "lab.sh"])
    await run("bash", ["-n", join(packageRoot(), "scripts", script)], { timeout: 30_000 });
});
