// src/maps/abi.ts against the compiled layout of bpf/lb_abi.h (native/abi_layout.c): every
// size, offset, constant and map name, in both directions, so one drift fails the test.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Native } from "../../src/dataplane/native.js";
import * as abi from "../../src/maps/abi.js";
import type { StructLayout } from "../../src/maps/abi.js";

const native = Native.get();

/** Differences between one TS layout and the C struct, as readable lines. */
function layoutMismatches(layout: StructLayout): string[] {
  const out: string[] = [];
  const size = native.abiSizeof(layout.name);
  if (size === undefined) return [`struct ${layout.name}: not in the C header`];
  if (size !== layout.size) out.push(`sizeof(struct ${layout.name}): C ${size}, TS ${layout.size}`);
  for (const [field, offset] of Object.entries(layout.fields)) {
    const c = native.abiOffsetof(layout.name, field);
    if (c === undefined) out.push(`${layout.name}.${field}: not in the C struct`);
    else if (c !== offset) out.push(`offsetof(${layout.name}, ${field}): C ${c}, TS ${offset}`);
  }
  return out;
}

/** Every numeric constant abi.ts exports under its C name (enums flattened). */
function tsConstants(): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, value] of Object.entries(abi)) {
    if (name.startsWith("LB_") && typeof value === "number") out.set(name, value);
  }
  for (const group of [abi.LbCounter, abi.LbDropReason, abi.LbDecapCounter]) {
    for (const [name, value] of Object.entries(group)) out.set(name, value);
  }
  return out;
}

function tsStrings(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(abi)) {
    if (name.startsWith("LB_") && typeof value === "string") out.set(name, value);
  }
  return out;
}

function constantMismatches(consts: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [name, value] of consts) {
    const c = native.abiConst(name);
    if (c === undefined) out.push(`${name}: not exported by native/abi_layout.c`);
    else if (c !== BigInt(value)) out.push(`${name}: C ${c}, TS ${value}`);
  }
  return out;
}

void test("native layout table covers every field of lb_abi.h", () => {
  assert.equal(native.abiSelfcheck(), 0, native.lastError());
});

void test("every layout in ALL_LAYOUTS matches the C size and offsets", () => {
  assert.deepEqual(abi.ALL_LAYOUTS.flatMap(layoutMismatches), []);
});

void test("every C struct and field has a TS mirror (pad fields aside)", () => {
  const layouts = new Map(abi.ALL_LAYOUTS.map((l) => [l.name, l]));
  const missing: string[] = [];
  for (const name of native.abiNames(0)) if (!layouts.has(name)) missing.push(`struct ${name}`);
  for (const qualified of native.abiNames(1)) {
    const [struct = "", field = ""] = qualified.split(".");
    if (field.startsWith("pad")) continue;
    if (layouts.get(struct)?.fields[field] === undefined) missing.push(qualified);
  }
  assert.deepEqual(missing, []);
});

void test("every numeric constant of abi.ts equals the C value", () => {
  const consts = tsConstants();
  assert.ok(consts.size > 40, `only ${consts.size} constants found`);
  assert.deepEqual(constantMismatches(consts), []);
});

void test("every C constant has a TS mirror", () => {
  const consts = tsConstants();
  assert.deepEqual(
    native.abiNames(2).filter((name) => !consts.has(name)),
    [],
  );
});

void test("map names match, both ways", () => {
  const strings = tsStrings();
  const mismatches: string[] = [];
  for (const [name, value] of strings) {
    const c = native.abiString(name);
    if (c !== value) mismatches.push(`${name}: C ${c ?? "(missing)"}, TS ${value}`);
  }
  for (const name of native.abiNames(3)) if (!strings.has(name)) mismatches.push(`${name}: no TS mirror`);
  assert.deepEqual(mismatches, []);
});

void test("the comparison catches a single drift", () => {
  const settings = abi.SettingsLayout;
  const shifted: StructLayout = {
    ...settings,
    fields: { ...settings.fields, flags: settings.fields.flags + 1 },
  };
  assert.deepEqual(layoutMismatches(shifted), ["offsetof(lb_settings, flags): C 24, TS 25"]);
  const resized: StructLayout = { ...settings, size: settings.size + 4 };
  assert.equal(layoutMismatches(resized).length, 1);
  const wrong = new Map([["LB_C_DROP_BASE", abi.LB_C_DROP_BASE + 1]]);
  assert.deepEqual(constantMismatches(wrong), [`LB_C_DROP_BASE: C 32, TS 33`]);
  assert.equal(constantMismatches(new Map([["LB_NOT_A_CONSTANT", 1]])).length, 1);
});

void test("unknown names are refused", () => {
  assert.equal(native.abiSizeof("lb_nope"), undefined);
  assert.equal(native.abiOffsetof("lb_backend", "nope"), undefined);
  assert.equal(native.abiConst("LB_NOPE"), undefined);
  assert.equal(native.abiString("LB_MAP_NOPE"), undefined);
});

void test("every drop reason has a stats name", () => {
  const missing: string[] = [];
  for (const [name, code] of Object.entries(abi.LbDropReason)) {
    if (code === abi.LbDropReason.LB_DROP_REASONS_USED) continue;
    if (abi.DROP_REASON_NAMES[code] === undefined) missing.push(name);
  }
  assert.deepEqual(missing, []);
  const countersUsed: number = abi.LbCounter.LB_C_COUNTERS_USED;
  const reasonsUsed: number = abi.LbDropReason.LB_DROP_REASONS_USED;
  assert.ok(countersUsed <= abi.LB_C_DROP_BASE, "counters overlap the drop reasons");
  assert.ok(abi.LB_C_DROP_BASE + reasonsUsed <= abi.LB_COUNTERS_SIZE, "drop reasons overflow lb_counters");
});
