// Where a config path (vips[0].backends[1].weight) sits in the YAML source: the node's line and
// column, or its closest existing ancestor's when the key is missing.
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Document, LineCounter, Node } from "yaml";

import type { ConfigPath } from "./schema.js";

export interface SourcePosition {
  /** Offset into the source text, for ordering. */
  readonly offset: number;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in UTF-16 code units. */
  readonly col: number;
}

/** `vips[0].backends[1].weight`; keys that are not plain identifiers are JSON-quoted. */
export function formatPath(path: ConfigPath): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function startOf(node: Node | null | undefined): number | undefined {
  return node?.range?.[0];
}

/**
 * Offset of the value at `path` (or of its key, with `atKey`). A missing step stops the walk:
 * the answer is then the deepest node that exists, i.e. the map that lacks the key.
 */
function offsetOf(doc: Document, path: ConfigPath, atKey: boolean): number {
  let node: unknown = doc.contents;
  let offset = startOf(doc.contents) ?? 0;
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      const keyStart = isScalar(pair.key) ? (startOf(pair.key) ?? offset) : offset;
      if (atKey && i === path.length - 1) return keyStart;
      // "key:" with nothing after it: the key is the only place to point at.
      const value = pair.value;
      if (value === null || (isScalar(value) && value.range?.[0] === value.range?.[1])) return keyStart;
      next = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      next = node.items[seg];
    }
    if (!isScalar(next) && !isMap(next) && !isSeq(next) && !isAlias(next)) break;
    node = next;
    offset = startOf(next) ?? offset;
  }
  return offset;
}

export function positionOf(
  doc: Document,
  lineCounter: LineCounter,
  path: ConfigPath,
  atKey = false,
): SourcePosition {
  const offset = offsetOf(doc, path, atKey);
  const { line, col } = lineCounter.linePos(offset);
  return { offset, line, col };
}
