import type { ByteRange } from './types';

/** Adds [start, end) to sorted, merged ranges; returns new ranges (touching ranges merge). */
export function addRange(ranges: ByteRange[], start: number, end: number): ByteRange[] {
  if (end <= start) return ranges;
  const out: ByteRange[] = [];
  let cur = { start, end };
  for (const r of ranges) {
    if (r.end < cur.start) out.push(r);
    else if (r.start > cur.end) {
      out.push(cur);
      cur = r;
    } else cur = { start: Math.min(r.start, cur.start), end: Math.max(r.end, cur.end) };
  }
  out.push(cur);
  return out.sort((a, b) => a.start - b.start);
}

/** Ranges without [start, end): bytes that no longer count as received. */
export function removeRange(ranges: ByteRange[], start: number, end: number): ByteRange[] {
  if (end <= start) return ranges;
  const out: ByteRange[] = [];
  for (const r of ranges) {
    if (r.end <= start || r.start >= end) {
      out.push(r);
      continue;
    }
    if (r.start < start) out.push({ start: r.start, end: start });
    if (r.end > end) out.push({ start: end, end: r.end });
  }
  return out;
}

/** End of the prefix [0, n) the ranges cover. */
export function prefixEnd(ranges: ByteRange[]): number {
  return ranges.length && ranges[0].start === 0 ? ranges[0].end : 0;
}

/** The gaps in [0, length) the ranges do not cover. */
export function missingRanges(ranges: ByteRange[], length: number): ByteRange[] {
  const out: ByteRange[] = [];
  let at = 0;
  for (const r of ranges) {
    if (r.start > at) out.push({ start: at, end: Math.min(r.start, length) });
    at = Math.max(at, r.end);
    if (at >= length) break;
  }
  if (at < length) out.push({ start: at, end: length });
  return out.filter(r => r.end > r.start);
}

/** True when [start, end) lies inside one of the ranges. */
export function covers(ranges: ByteRange[], start: number, end: number): boolean {
  return end <= start || ranges.some(r => r.start <= start && r.end >= end);
}
