import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { decodeFileId, FileLocation } from '../bundle/file-id';
import { bundlePath, readFullyAt, writeFullyAt } from '../bundle/files';
import { HEADER_SIZE, RecordHeader, RecordKind, crc32c, decodeHeader } from '../bundle/record';
import { ByteReader } from './copier';
import { nodeGet } from './node-client';
import type { BadOwnRecord } from './own-read';
import { checkRecord } from './replica-read';
import { NODE_API } from './replicator';

/** A live member of this node's group, as the registry lists it. */
export interface RepairMember {
  group: number;
  server: number;
  url: string;
  instance: string;
}

export interface OwnRepairOptions {
  root: string;
  self: { group: number; server: number };
  secret: string;
  /** idle time of a member's answer before it fails (ms) */
  timeoutMs: number;
}

export type OwnRepairOutcome = { state: 'intact' } | { state: 'repaired'; from: string };

const PIECE = 1 << 20;

/** The member's route that serves the bytes of its copy of one record (app/lib/replication-routes.ts). */
export function copiedRecordPath(owner: { group: number; server: number }, bundle: number, offset: number, instance: string): string {
  return `${NODE_API}/replicas/${owner.group}-${owner.server}/${bundle}?instance=${instance}&offset=${offset}`;
}

/**
 * Writes a bad record of this node's own bundle again from a member's copy,
 * at its own place. Only a record that fails its checksum here is touched,
 * and only with the member's record for the same file id (its header the
 * same as ours when ours is intact); its bytes are checked before they are
 * written and its header written last, then all of it synced and read back.
 * Throws when no member has a good copy.
 */
export async function repairOwnRecord(bad: BadOwnRecord, members: RepairMember[], o: OwnRepairOptions): Promise<OwnRepairOutcome> {
  const loc = decodeFileId(bad.fileId);
  if (loc.group !== o.self.group || loc.server !== o.self.server || loc.bundle !== bad.bundle || loc.offset !== bad.offset) {
    throw new Error(`${bad.fileId} is not a record of this node at bundle ${bad.bundle} offset ${bad.offset}`);
  }
  const fh = await fs.promises.open(bundlePath(o.root, loc.bundle), 'r+');
  try {
    const ownHead = await readFullyAt(fh, loc.offset, HEADER_SIZE);
    const own = decodeHeader(ownHead);
    if (own && await checkRecord(fh, loc.offset, own)) return { state: 'intact' };
    const sameRecord = (head: Buffer, h: RecordHeader) => (own ? head.equals(ownHead)
      : h.kind === RecordKind.Blob && h.cookie === loc.cookie && h.dataLen === loc.size && h.mimeCode === loc.mimeCode);
    const tried: string[] = [];
    for (const m of members.filter(n => n.group === o.self.group && n.server !== o.self.server)) {
      const who = `${m.group}.${m.server} (${m.url})`;
      try {
        if (await copyFrom(fh, loc, m, sameRecord, o)) return { state: 'repaired', from: who };
        tried.push(`${who}: its copy failed its checksum too`);
      } catch (err) {
        tried.push(`${who}: ${(err as Error).message}`);
      }
    }
    throw new Error(`no member of group ${o.self.group} gave a good copy (${tried.join('; ') || 'none is up'})`);
  } finally {
    await fh.close();
  }
}

/**
 * One member's copy written over the bad record: true once it is on disk and
 * reads back intact. A record up to a MiB is checked in memory before a byte
 * is written; a larger one is read twice, checked first and written on the
 * second read (checked again), so a member whose copy is bad too never
 * overwrites a record whose other bytes may still be good.
 */
async function copyFrom(
  fh: FileHandle, loc: FileLocation, m: RepairMember, sameRecord: (head: Buffer, h: RecordHeader) => boolean, o: OwnRepairOptions,
): Promise<boolean> {
  const large = loc.size > PIECE;
  if (large && !await readCopy(loc, m, sameRecord, o, async () => undefined)) return false;
  return readCopy(loc, m, sameRecord, o, async (piece, at) => writeFullyAt(fh, piece, at), async (head, h, meta, small) => {
    if (small) await writeFullyAt(fh, small, loc.offset + HEADER_SIZE);
    await writeFullyAt(fh, meta, loc.offset + HEADER_SIZE + h.dataLen);
    await writeFullyAt(fh, head, loc.offset);
    await fh.datasync();
    return (await checkRecord(fh, loc.offset, h)) !== undefined;
  });
}

/**
 * Reads the member's copy, its data through `piece` when large (kept in
 * memory when small); true when every checksum holds and `done` (given the
 * header, meta and small data) agrees.
 */
async function readCopy(
  loc: FileLocation, m: RepairMember, sameRecord: (head: Buffer, h: RecordHeader) => boolean, o: OwnRepairOptions,
  piece: (b: Buffer, at: number) => Promise<void>,
  done?: (head: Buffer, h: RecordHeader, meta: Buffer, small: Buffer | undefined) => Promise<boolean>,
): Promise<boolean> {
  const res = await nodeGet(m.url, copiedRecordPath(o.self, loc.bundle, loc.offset, m.instance), o.secret, { timeoutMs: o.timeoutMs });
  try {
    const bytes = new ByteReader(res);
    const head = Buffer.from(await bytes.exactly(HEADER_SIZE));
    const h = decodeHeader(head);
    if (!h || !sameRecord(head, h)) throw new Error('its copy at that place is another record');
    const small = h.dataLen <= PIECE ? Buffer.from(await bytes.exactly(h.dataLen)) : undefined;
    let crc = small ? crc32c(small) : 0;
    for (let at = 0; !small && at < h.dataLen;) {
      const b = await bytes.upTo(Math.min(PIECE, h.dataLen - at));
      crc = crc32c(b, crc);
      await piece(b, loc.offset + HEADER_SIZE + at);
      at += b.length;
    }
    const meta = Buffer.from(await bytes.exactly(h.metaLen));
    await bytes.end();
    if (crc !== h.dataCrc || crc32c(meta) !== h.metaCrc) return false;
    return done ? done(head, h, meta, small) : true;
  } finally {
    res.destroy();
  }
}
