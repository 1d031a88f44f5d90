// Plain-text tables for lbctl's human output: a header row, columns two spaces apart, numeric
// columns right-aligned.

export interface Column {
  readonly title: string;
  readonly align?: "left" | "right";
}

export function formatTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? "";
        const w = widths[i] ?? 0;
        return c.align === "right" ? cell.padStart(w) : i === columns.length - 1 ? cell : cell.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join("\n") + "\n";
}
