import fs from 'node:fs';
import path from 'node:path';
import { writevFully } from '../bundle/files';
import type { SonofsStore } from '../store';
import { checkSessionId, verifiedCover, readMirror } from './mirror';
import { dataPosition, releaseSpace } from './space';
import type { ByteRange, Session, SessionStore, SpaceRef } from './types';

/** The lookup key under which an adopted upload's old space waits for its node to give it back. */
export function abandonedKey(node: string, space: SpaceRef): string {
  return `abandoned:${node.length}:${node}:${space.bundle}:${space.offset}:${space.length}`;
}

export function abandonedPrefix(node: string): string {
  return `abandoned:${node.length}:${node}:`;
}

/** What an abandoned key names: a reserved space, or a staging file (by upload id). */
export function parseAbandoned(key: string, node: string): SpaceRef | { staging: string } | undefined {
  const rest = key.startsWith(abandonedPrefix(node)) ? key.slice(abandonedPrefix(node).length) : '';
  const m = /^(\d+):(\d+):(\d+)$/.exec(rest);
  if (m) return { bundle: Number(m[1]), offset: Number(m[2]), length: Number(m[3]) };
  const st = /^staging:([A-Za-z0-9_-]{16,64})$/.exec(rest);
  return st ? { staging: st[1] } : undefined;
}

export interface AdoptDeps {
  store: SonofsStore;
  db: SessionStore;
  opts: { root: string; node: string; ttlMs: number; fsync: boolean };
}

/**
 * Takes over an upload whose node is down, from this node's mirror of its
 * acknowledged bytes (mirror.ts): every received range must be in the
 * mirror and pass its check. The bytes go into space reserved here (or a
 * staging file of its own, for a deferred length), synced, then the session
 * moves to this node in one compare-and-set step (only if it still names the
 * dead node and the same ranges, and its node has not begun storing it); its
 * old space is left for that node to give back when it returns. Runs under
 * the session's lock. Undefined when this node cannot take it (no whole
 * mirror, a write it missed, or the session changed).
 */
export async function adoptSession(d: AdoptDeps, s: Session, deadNode: string): Promise<Session | undefined> {
  if (s.node !== deadNode || (!s.space && !s.staging) || (s.state !== 'active' && s.state !== 'paused')) return undefined;
  // its node began storing it as a file, or this member missed a write (its copy may hold other bytes)
  if (s.committing || s.mirrorMissed?.includes(d.opts.node)) return undefined;
  if (!await verifiedCover(d.opts.root, s.id, s.ranges)) return undefined;
  const target = s.space ? await newSpace(d, s.space.length) : newStaging(d, s.id);
  let adopted: Session | undefined;
  try {
    for (const r of s.ranges) await readMirror(d.opts.root, s.id, r.start, r.end, target.write);
    await target.sync();
    adopted = await d.db.update(s.id, cur => (cur.node === deadNode && !cur.committing && sameRanges(cur.ranges, s.ranges)
      ? { ...cur, ...target.ref, node: d.opts.node, expires: Date.now() + d.opts.ttlMs }
      : undefined));
  } finally {
    // an update that failed may still have applied (a lost answer): the bytes go only if the session does not name them
    let named = target.namedBy(adopted);
    try {
      named ||= target.namedBy(await d.db.get(s.id));
    } catch {
      named = true; // unknown: leave them (compaction or the next sweep takes them) rather than drop what the session may name
    }
    if (!named) await target.release();
  }
  if (!target.namedBy(adopted)) return undefined;
  await d.db.setKey(s.space ? abandonedKey(deadNode, s.space) : abandonedStagingKey(deadNode, s.id), s.id);
  return adopted;
}

/** Where an adopted upload's bytes go on this node. */
interface AdoptTarget {
  ref: Pick<Session, 'space'> | Pick<Session, 'staging'>;
  write(piece: Buffer, at: number): Promise<void>;
  sync(): Promise<void>;
  /** the session names these bytes (it is this node's now) */
  namedBy(cur: Session | undefined): boolean;
  release(): Promise<void>;
}

async function newSpace(d: AdoptDeps, length: number): Promise<AdoptTarget> {
  const slot = await d.store.writer.reserve(length);
  const space: SpaceRef = { bundle: slot.bundle, offset: slot.offset, length: slot.length };
  slot.finish();
  return {
    ref: { space },
    async write(piece, at) {
      const fd = d.store.files.acquire(space.bundle);
      try {
        await writevFully(fd, [ piece ], dataPosition(space, at));
      } finally {
        d.store.files.release(space.bundle);
      }
    },
    async sync() {
      if (d.opts.fsync) await d.store.files.sync(space.bundle);
    },
    namedBy: cur => cur?.node === d.opts.node && cur.space?.bundle === space.bundle && cur.space?.offset === space.offset,
    release: () => releaseSpace(d.opts.root, space),
  };
}

function newStaging(d: AdoptDeps, id: string): AdoptTarget {
  const staging = stagingFile(d.opts.root, id);
  fs.mkdirSync(path.dirname(staging), { recursive: true });
  let fd: number | undefined = fs.openSync(staging, 'w');
  const close = () => {
    if (fd !== undefined) fs.closeSync(fd);
    fd = undefined;
  };
  return {
    ref: { staging },
    write: (piece, at) => writevFully(fd!, [ piece ], at),
    async sync() {
      if (d.opts.fsync) fs.fdatasyncSync(fd!);
      close();
    },
    namedBy: cur => cur?.node === d.opts.node && cur.staging === staging,
    async release() {
      close();
      fs.rmSync(staging, { force: true });
    },
  };
}

/** A deferred-length upload's staging file under a node's root. */
export function stagingFile(root: string, id: string): string {
  return path.join(root, 'sessions', 'staging', checkSessionId(id));
}

/** The lookup key under which an adopted deferred-length upload's old staging file waits for its node to delete it. */
export function abandonedStagingKey(node: string, id: string): string {
  return `${abandonedPrefix(node)}staging:${id}`;
}

function sameRanges(a: ByteRange[], b: ByteRange[]): boolean {
  return a.length === b.length && a.every((r, i) => r.start === b[i].start && r.end === b[i].end);
}
