// The real balancer object under BPF_PROG_TEST_RUN beside the reference model, both fed from
// the same scenario through the same map layer: run a frame through both and compare.
import assert from "node:assert/strict";
import { BpfObject } from "../../src/dataplane/bpf-object.js";
import { Native } from "../../src/dataplane/native.js";
import { hexDiff } from "../../src/lib/hexdiff.js";
import { bpfObjectPath } from "../../src/lib/paths.js";
import { BalancerMaps } from "../../src/maps/balancer-maps.js";
import { decide, type Decision } from "../../src/model/balancer.js";
import { MapsView } from "../../src/model/maps-view.js";
import { xdpActionName } from "../../src/model/xdp-action.js";
import { TEST_RUN_IFINDEX } from "./scenario.js";

export interface RunOutcome {
  action: number;
  output: Uint8Array;
}

export class BalancerHarness {
  readonly memory: BalancerMaps;
  readonly view: MapsView;
  private readonly progFd: number;

  private constructor(
    readonly obj: BpfObject,
    readonly kernel: BalancerMaps,
    flowTableSize: number,
  ) {
    this.memory = BalancerMaps.inMemory({ ncpus: 1, flowTableSize });
    this.view = new MapsView(this.memory);
    this.progFd = obj.progFd("lb_balancer");
  }

  static open(flowTableSize = 65536): BalancerHarness {
    const obj = BpfObject.open(bpfObjectPath("balancer"), { maxEntries: { lb_flows: flowTableSize } });
    try {
      obj.load();
      return new BalancerHarness(obj, BalancerMaps.fromObject(obj), flowTableSize);
    } catch (err) {
      obj.close();
      throw err;
    }
  }

  /** Applies the same change to the kernel's maps and the model's. */
  apply(change: (maps: BalancerMaps) => void): void {
    change(this.kernel);
    change(this.memory);
    this.view.refreshTables();
  }

  runKernel(frame: Uint8Array): RunOutcome {
    const result = Native.get().progTestRun(this.progFd, frame, { outCap: frame.length + 128 });
    return { action: result.retval, output: result.data };
  }

  runModel(frame: Uint8Array): Decision {
    return decide(frame, this.view, TEST_RUN_IFINDEX);
  }

  /** Both sides, asserting the same action and the same bytes; returns the model's decision. */
  compare(frame: Uint8Array, label: string): Decision {
    const kernel = this.runKernel(frame);
    const model = this.runModel(frame);
    assert.equal(
      xdpActionName(kernel.action),
      xdpActionName(model.action),
      `${label}: action differs (kernel vs model)`,
    );
    if (!bytesEqual(kernel.output, model.output)) {
      assert.fail(
        `${label}: output bytes differ (expected = model, actual = kernel)\n${hexDiff(model.output, kernel.output)}`,
      );
    }
    return model;
  }

  /** lb_counters of the kernel, summed over CPUs, as numbers. */
  kernelCounters(): number[] {
    return this.kernel.readCounters().map(Number);
  }

  close(): void {
    this.obj.close();
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
