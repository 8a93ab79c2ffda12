import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, writeFullyAt } from '../bundle/files';
import { crc32c } from '../bundle/record';
import { BadRequestError } from '../errors';
import type { ByteRange } from './types';

/**
 * A member's copy of the acknowledged bytes of an upload session whose
 * space is on another node of its group (cluster mode, replication 'all'):
 * should that node die, this one can take the upload over. Under
 * root/replicas/sessions/<id>/: `data` holds the bytes at their offsets in
 * the upload, and each range received whole and synced is an empty file
 * `r-<start>-<end>-<crc32c hex>` beside it, made only after the bytes are on
 * disk (so a marker never names bytes that are not there).
 */
export function mirrorDir(root: string, id: string): string {
  return path.join(root, 'replicas', 'sessions', checkSessionId(id));
}

const SESSION_ID = /^[A-Za-z0-9_-]{16,64}$/;

/** A session id as a path segment: base64url only, so it names no other path. */
export function checkSessionId(id: unknown): string {
  if (typeof id !== 'string' || !SESSION_ID.test(id)) throw new BadRequestError('INVALID_SESSION', 'a session id is 16 to 64 base64url characters');
  return id;
}

export interface MirroredRange extends ByteRange {
  crc: number;
}

/**
 * Writes [start, end) of a session's bytes from `body` into the mirror,
 * synced, then marks it. Resolves with the crc32c of what it wrote, which the
 * sender compares with what it sent; rejects when the body is not exactly
 * end - start bytes.
 */
export async function mirrorRange(root: string, id: string, start: number, end: number, body: Readable): Promise<number> {
  const dir = mirrorDir(root, id);
  const fresh = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  if (fresh) for (let d = dir, i = 0; i < 3; d = path.dirname(d), i++) fsyncDir(path.dirname(d));
  const fh = await fs.promises.open(path.join(dir, 'data'), fs.constants.O_RDWR | fs.constants.O_CREAT);
  let crc = 0;
  let at = start;
  try {
    for await (const chunk of body) {
      const c = chunk as Buffer;
      if (at + c.length > end) throw new BadRequestError('EXCEEDS_RANGE', `the body carries more than the ${end - start} bytes of [${start}, ${end})`);
      await writeFullyAt(fh, c, at);
      crc = crc32c(c, crc);
      at += c.length;
    }
    if (at !== end) throw new BadRequestError('SHORT_RANGE', `the body carried ${at - start} of the ${end - start} bytes of [${start}, ${end})`);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  fs.closeSync(fs.openSync(path.join(dir, `r-${start}-${end}-${crc.toString(16)}`), 'w'));
  fsyncDir(dir);
  return crc;
}

/** The ranges a mirror holds, as marked. */
export function mirroredRanges(root: string, id: string): MirroredRange[] {
  let names: string[];
  try {
    names = fs.readdirSync(mirrorDir(root, id));
  } catch {
    return [];
  }
  const out: MirroredRange[] = [];
  for (const n of names) {
    const m = /^r-(\d+)-(\d+)-([0-9a-f]{1,8})$/.exec(n);
    if (m) out.push({ start: Number(m[1]), end: Number(m[2]), crc: parseInt(m[3], 16) });
  }
  return out.sort((a, b) => a.start - b.start || b.end - a.end);
}

/**
 * The marked ranges that together cover every range of `need`, each read
 * back and checked against its crc; undefined when the mirror lacks a byte of
 * them or a range fails its check.
 */
export async function verifiedCover(root: string, id: string, need: ByteRange[]): Promise<MirroredRange[] | undefined> {
  const have = mirroredRanges(root, id);
  const used: MirroredRange[] = [];
  for (const r of need) {
    for (let at = r.start; at < r.end;) {
      // the marked range reaching furthest from `at`
      const best = have.filter(h => h.start <= at && h.end > at).sort((a, b) => b.end - a.end)[0];
      if (!best) return undefined;
      if (!used.includes(best)) used.push(best);
      at = best.end;
    }
  }
  const fh = await fs.promises.open(path.join(mirrorDir(root, id), 'data'), 'r').catch(() => undefined);
  if (!fh) return used.length ? undefined : [];
  try {
    for (const u of used) if (await crcOf(fh, u.start, u.end) !== u.crc) return undefined;
  } finally {
    await fh.close();
  }
  return used;
}

/** Copies [start, end) of the mirror's data to `write` in pieces. */
export async function readMirror(root: string, id: string, start: number, end: number, write: (piece: Buffer, at: number) => Promise<void>): Promise<void> {
  const fh = await fs.promises.open(path.join(mirrorDir(root, id), 'data'), 'r');
  try {
    const buf = Buffer.allocUnsafe(PIECE);
    for (let at = start; at < end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(PIECE, end - at), at);
      if (!bytesRead) throw new Error(`the mirror of ${id} ends at ${at}, before ${end}`);
      await write(buf.subarray(0, bytesRead), at);
      at += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

export function removeMirror(root: string, id: string): void {
  fs.rmSync(mirrorDir(root, id), { recursive: true, force: true });
}

/** Session ids with a mirror here, and when it last changed (ms). */
export function listMirrors(root: string): Array<{ id: string; changed: number }> {
  const top = path.join(root, 'replicas', 'sessions');
  let names: string[];
  try {
    names = fs.readdirSync(top);
  } catch {
    return [];
  }
  const out: Array<{ id: string; changed: number }> = [];
  for (const id of names) {
    if (!SESSION_ID.test(id)) continue;
    try {
      out.push({ id, changed: fs.statSync(path.join(top, id)).mtimeMs });
    } catch { /* removed meanwhile */ }
  }
  return out;
}

const PIECE = 1 << 20;

async function crcOf(fh: FileHandle, start: number, end: number): Promise<number> {
  let crc = 0;
  const buf = Buffer.allocUnsafe(PIECE);
  for (let at = start; at < end;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(PIECE, end - at), at);
    if (!bytesRead) return -1;
    crc = crc32c(buf.subarray(0, bytesRead), crc);
    at += bytesRead;
  }
  return crc;
}
