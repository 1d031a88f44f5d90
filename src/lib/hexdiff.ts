// Hex dumps and a row-by-row hex diff of two byte arrays, for test failure messages: rows of
// 16 bytes, differing rows shown as an expected/actual pair with a marker under each byte
// that differs (or exists on one side only).

const ROW = 16;

function hexRow(bytes: Uint8Array, offset: number): string {
  const cells: string[] = [];
  for (let i = 0; i < ROW; i++) {
    const b = bytes[offset + i];
    cells.push(b === undefined ? "  " : b.toString(16).padStart(2, "0"));
  }
  return cells.join(" ");
}

function offsetLabel(offset: number): string {
  return offset.toString(16).padStart(4, "0");
}

/** Classic dump: "0000  45 00 00 54 …", 16 bytes a row. */
export function hexDump(bytes: Uint8Array): string {
  const rows: string[] = [];
  for (let at = 0; at < bytes.length; at += ROW)
    rows.push(`${offsetLabel(at)}  ${hexRow(bytes, at).trimEnd()}`);
  return rows.join("\n");
}

export interface HexDiffOptions {
  /** Identical rows shown around each differing row (default 1); the rest elide to "…". */
  context?: number;
}

/**
 * "" when a and b are byte-identical; otherwise a header with both lengths and the first
 * differing offset, then the rows: identical ones as "  0010  …", differing ones as
 * "- 0010  …" (expected), "+ 0010  …" (actual) and a line of ^^ under each differing byte.
 */
export function hexDiff(expected: Uint8Array, actual: Uint8Array, options: HexDiffOptions = {}): string {
  const context = options.context ?? 1;
  const length = Math.max(expected.length, actual.length);
  const rows = Math.ceil(length / ROW);
  const differs = (i: number): boolean => i < length && expected[i] !== actual[i];
  const rowDiffers: boolean[] = [];
  let first = -1;
  for (let r = 0; r < rows; r++) {
    let any = false;
    for (let i = r * ROW; i < (r + 1) * ROW; i++) {
      if (differs(i)) {
        any = true;
        if (first < 0) first = i;
      }
    }
    rowDiffers.push(any);
  }
  if (first < 0) return "";
  const near = (r: number): boolean => {
    for (let k = Math.max(0, r - context); k <= Math.min(rows - 1, r + context); k++)
      if (rowDiffers[k]) return true;
    return false;
  };
  const out = [
    `expected ${expected.length} bytes, actual ${actual.length} bytes; first difference at offset ${first} (0x${first.toString(16)})`,
  ];
  let elided = false;
  for (let r = 0; r < rows; r++) {
    const at = r * ROW;
    if (!near(r)) {
      if (!elided) out.push("  …");
      elided = true;
      continue;
    }
    elided = false;
    if (!rowDiffers[r]) {
      out.push(`  ${offsetLabel(at)}  ${hexRow(expected, at).trimEnd()}`);
      continue;
    }
    let marks = "";
    for (let i = at; i < at + ROW; i++) marks += differs(i) ? "^^ " : "   ";
    out.push(`- ${offsetLabel(at)}  ${hexRow(expected, at).trimEnd()}`);
    out.push(`+ ${offsetLabel(at)}  ${hexRow(actual, at).trimEnd()}`);
    out.push(`        ${marks.trimEnd()}`);
  }
  return out.join("\n");
}
