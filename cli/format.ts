const UNITS = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB' ];

/** 1536 → "1.5 KiB" */
export function bytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${UNITS[i]}`;
}

/** bytes over milliseconds → "45.2 MiB/s" */
export function rate(n: number, ms: number): string {
  return `${bytes(Math.round(n / Math.max(ms, 1) * 1000))}/s`;
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms / 1000)} s`;
}

/** Columns padded to their widest cell (the last one is not padded). */
export function table(rows: string[][], header?: string[]): string {
  const all = header ? [ header, ...rows ] : rows;
  const widths: number[] = [];
  for (const r of all) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, [ ...c ].length); });
  return all.map(r => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i] - [ ...c ].length))).join('  ').trimEnd())
    .join('\n') + '\n';
}

/** Writes a JSON document on stdout (scripts parse it). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
