// A data plane under test beside the reference model, both fed from the same scenario through
// the same map layer: run a frame through both and compare. The data plane is the real XDP
// object under BPF_PROG_TEST_RUN ("kernel") or the userspace engine of the NFQUEUE worker
// through FFI ("engine"): the same fixtures and traffic check both.
import assert from "node:assert/strict";
import { BpfObject } from "../../src/dataplane/bpf-object.js";
import { Native } from "../../src/dataplane/native.js";
import { UserspaceEngine } from "../../src/dataplane/userspace-engine.js";
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
  /** lb_counters indices the run incremented, when the plane reports them per packet. */
  counted?: number[];
  vipId?: number | undefined;
  backend?: number | undefined;
}

export type PlaneKind = "kernel" | "engine";
export const PLANES: readonly PlaneKind[] = ["kernel", "engine"];

/** One data plane: its maps (written through BalancerMaps) and a way to run a frame. */
interface Plane {
  readonly maps: BalancerMaps;
  run(frame: Uint8Array): RunOutcome;
  close(): void;
}

function kernelPlane(flowTableSize: number): Plane {
  const obj = BpfObject.open(bpfObjectPath("balancer"), { maxEntries: { lb_flows: flowTableSize } });
  try {
    obj.load();
    const maps = BalancerMaps.fromObject(obj);
    const progFd = obj.progFd("lb_balancer");
    return {
      maps,
      run: (frame) => {
        const result = Native.get().progTestRun(progFd, frame, { outCap: frame.length + 128 });
        return { action: result.retval, output: result.data };
      },
      close: () => {
        obj.close();
      },
    };
  } catch (err) {
    obj.close();
    throw err;
  }
}

function enginePlane(flowTableSize: number): Plane {
  const engine = new UserspaceEngine(flowTableSize);
  return {
    maps: engine.maps,
    run: (frame) => {
      const r = engine.decide(frame, TEST_RUN_IFINDEX);
      return { action: r.action, output: r.output, counted: r.counted, vipId: r.vipId, backend: r.backend };
    },
    close: () => {
      engine.close();
    },
  };
}

export class BalancerHarness {
  readonly memory: BalancerMaps;
  readonly view: MapsView;
  /** The maps of the data plane under test. */
  readonly dataplane: BalancerMaps;

  private constructor(
    readonly kind: PlaneKind,
    private readonly plane: Plane,
    flowTableSize: number,
  ) {
    this.dataplane = plane.maps;
    this.memory = BalancerMaps.inMemory({ ncpus: 1, flowTableSize });
    this.view = new MapsView(this.memory);
  }

  static open(flowTableSize = 65536, kind: PlaneKind = "kernel"): BalancerHarness {
    const plane = kind === "kernel" ? kernelPlane(flowTableSize) : enginePlane(flowTableSize);
    return new BalancerHarness(kind, plane, flowTableSize);
  }

  /** Applies the same change to the data plane's maps and the model's. */
  apply(change: (maps: BalancerMaps) => void): void {
    change(this.dataplane);
    change(this.memory);
    this.view.refreshTables();
  }

  runDataplane(frame: Uint8Array): RunOutcome {
    return this.plane.run(frame);
  }

  runModel(frame: Uint8Array): Decision {
    return decide(frame, this.view, TEST_RUN_IFINDEX);
  }

  /** Both sides, asserting the same action and the same bytes (and, where the plane reports
   * them per packet, the same counters, VIP and backend); returns the model's decision. */
  compare(frame: Uint8Array, label: string): Decision {
    const actual = this.runDataplane(frame);
    const model = this.runModel(frame);
    assert.equal(
      xdpActionName(actual.action),
      xdpActionName(model.action),
      `${label}: action differs (${this.kind} vs model)`,
    );
    if (!bytesEqual(actual.output, model.output)) {
      assert.fail(
        `${label}: output bytes differ (expected = model, actual = ${this.kind})\n${hexDiff(model.output, actual.output)}`,
      );
    }
    if (actual.counted !== undefined) {
      const deltas = new Array<number>(model.counters.length).fill(0);
      for (const c of actual.counted) deltas[c] = (deltas[c] ?? 0) + 1;
      assert.deepEqual(deltas, model.counters, `${label}: counters (${this.kind} vs model)`);
      assert.equal(actual.vipId, model.vipTraffic?.index, `${label}: VIP counted`);
      assert.equal(actual.backend, model.backendTraffic?.index, `${label}: backend counted`);
    }
    return model;
  }

  /** lb_counters of the data plane, summed over CPUs / runners, as numbers. */
  dataplaneCounters(): number[] {
    return this.dataplane.readCounters().map(Number);
  }

  close(): void {
    this.plane.close();
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
