// lb_decap (build/bpf/decap.bpf.o) through BPF_PROG_TEST_RUN against the reference model
// (src/model/decap.ts): the real program and maps, every shared fixture, compared on action,
// output bytes (hex diff on mismatch) and per-CPU counters. Needs root.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Native } from "../../src/dataplane/native.js";
import { BpfObject } from "../../src/dataplane/bpf-object.js";
import { hexDiff } from "../../src/lib/hexdiff.js";
import { bpfObjectPath } from "../../src/lib/paths.js";
import {
  LB_MAP_DECAP_ADDRS,
  LB_MAP_DECAP_COUNTERS,
  LB_MAP_DECAP_SETTINGS,
  LbDecapCounter,
} from "../../src/maps/abi.js";
import {
  decapAddrKeyBytes,
  decapAddrKeyHex,
  decapDecide,
  type DecapCounters,
  type DecapState,
} from "../../src/model/decap.js";
import { ipBytes } from "../../src/model/packet-builder.js";
import { xdpActionName } from "../../src/model/xdp-action.js";
import {
  DECAP_FIXTURES,
  ENCAP_PORT,
  encapFrame,
  INNER,
  LOCAL_V4,
  LOCAL_V6,
} from "../fixtures/decap-fixtures.js";

const state: DecapState = {
  encapPort: ENCAP_PORT,
  localAddrs: new Set([decapAddrKeyHex(ipBytes(LOCAL_V4)), decapAddrKeyHex(ipBytes(LOCAL_V6))]),
};

const COUNTERS: ReadonlyArray<[keyof DecapCounters, number]> = [
  ["rx", LbDecapCounter.LB_DC_RX],
  ["decap", LbDecapCounter.LB_DC_DECAP],
  ["pass", LbDecapCounter.LB_DC_PASS],
  ["malformed", LbDecapCounter.LB_DC_MALFORMED],
];

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function check(ret: number, what: string): void {
  assert.ok(ret >= 0, `${what}: ${ret} ${Native.get().lastError()}`);
}

/** The decap object, loaded, with maps filled the way the agent fills them. */
class DecapProgram {
  readonly obj = BpfObject.open(bpfObjectPath("decap"));
  readonly native = Native.get();
  progFd = -1;
  countersFd = -1;
  stride = 0;

  load(): void {
    this.obj.load();
    this.progFd = this.obj.progFd("lb_decap");
    this.countersFd = this.obj.mapFd(LB_MAP_DECAP_COUNTERS);
    this.stride = this.native.mapInfo(this.countersFd, LB_MAP_DECAP_COUNTERS).valueStride;
    const settings = new Uint8Array(8); // struct lb_decap_settings
    new DataView(settings.buffer).setUint16(0, state.encapPort, false); // encap_port_be
    check(this.native.mapUpdate(this.obj.mapFd(LB_MAP_DECAP_SETTINGS), u32le(0), settings), "settings");
    for (const addr of [LOCAL_V4, LOCAL_V6]) {
      check(
        this.native.mapUpdate(this.obj.mapFd(LB_MAP_DECAP_ADDRS), decapAddrKeyBytes(ipBytes(addr)), u32le(1)),
        addr,
      );
    }
  }

  resetCounters(): void {
    for (const [, index] of COUNTERS) {
      check(
        this.native.mapUpdate(this.countersFd, u32le(index), new Uint8Array(this.stride)),
        "counters reset",
      );
    }
  }

  /** Each counter summed over CPUs. */
  counters(): DecapCounters {
    const out: DecapCounters = { rx: 0, decap: 0, pass: 0, malformed: 0 };
    const value = new Uint8Array(this.stride);
    const view = new DataView(value.buffer);
    for (const [name, index] of COUNTERS) {
      check(this.native.mapLookup(this.countersFd, u32le(index), value), "counters");
      let sum = 0n;
      for (let at = 0; at < this.stride; at += 8) sum += view.getBigUint64(at, true);
      out[name] = Number(sum);
    }
    return out;
  }
}

void describe("lb_decap under BPF_PROG_TEST_RUN vs the model", () => {
  const prog = new DecapProgram();
  before(() => {
    prog.load();
  });
  after(() => {
    prog.obj.close();
  });

  const fixtures = DECAP_FIXTURES.filter((f) => f.modelOnly !== true);
  void it("runs at least 15 fixtures", () => {
    assert.ok(fixtures.length >= 15);
  });

  for (const f of fixtures) {
    void it(f.name, () => {
      const model = decapDecide(f.frame, state);
      prog.resetCounters();
      const run = prog.native.progTestRun(prog.progFd, f.frame);
      assert.equal(
        xdpActionName(run.retval),
        xdpActionName(model.xdpAction),
        `action (model: ${model.reason})`,
      );
      const diff = hexDiff(model.output, run.data);
      assert.equal(diff, "", `output frame, model (-) vs program (+):\n${diff}`);
      assert.deepEqual(prog.counters(), model.counters, "counters");
    });
  }

  void it("counts every repetition (repeat re-runs on the program's own output)", () => {
    const repeat = 8;
    const passed = encapFrame({ outer: 4, inner: INNER.tcp4, dport: 9 });
    prog.resetCounters();
    assert.equal(prog.native.progTestRun(prog.progFd, passed, { repeat }).retval, 2);
    assert.deepEqual(prog.counters(), { rx: repeat, decap: 0, pass: repeat, malformed: 0 });

    const dropped = encapFrame({ outer: 6, inner: INNER.tcp4, udpLength: 7 });
    prog.resetCounters();
    assert.equal(prog.native.progTestRun(prog.progFd, dropped, { repeat }).retval, 1);
    assert.deepEqual(prog.counters(), { rx: repeat, decap: 0, pass: 0, malformed: repeat });

    // Decapsulated once; the inner packet it leaves is plain TCP, passed on every later run.
    const ours = encapFrame({ outer: 4, inner: INNER.tcp4 });
    prog.resetCounters();
    const run = prog.native.progTestRun(prog.progFd, ours, { repeat });
    assert.equal(run.retval, 2);
    assert.equal(hexDiff(decapDecide(ours, state).output, run.data), "");
    assert.deepEqual(prog.counters(), { rx: repeat, decap: 1, pass: repeat - 1, malformed: 0 });
  });
});
