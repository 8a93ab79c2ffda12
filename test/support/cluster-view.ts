import assert from 'node:assert/strict';
import { request } from './http';

/** A node's GET /file/cluster, asserted 200. */
export async function clusterOf(base: string): Promise<any> {
  const res = await request(`${base}/file/cluster`);
  assert.equal(res.status, 200, res.body.toString());
  return res.json();
}

/** A urlencoded form body with its headers, asking for JSON (the course routes' form posts). */
export function form(fields: Record<string, string | number>) {
  const body = Buffer.from(new URLSearchParams(Object.entries(fields).map(([ k, v ]) => [ k, String(v) ])).toString());
  return { body, headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length, Accept: 'application/json' } };
}
