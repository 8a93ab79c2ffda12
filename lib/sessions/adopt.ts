import { writevFully } from '../bundle/files';
import type { SonofsStore } from '../store';
import { verifiedCover, readMirror } from './mirror';
import { dataPosition, releaseSpace } from './space';
import type { ByteRange, Session, SessionStore, SpaceRef } from './types';

/** The lookup key under which an adopted upload's old space waits for its node to give it back. */
export function abandonedKey(node: string, space: SpaceRef): string {
  return `abandoned:${node.length}:${node}:${space.bundle}:${space.offset}:${space.length}`;
}

export function abandonedPrefix(node: string): string {
  return `abandoned:${node.length}:${node}:`;
}

export function parseAbandoned(key: string, node: string): SpaceRef | undefined {
  const rest = key.startsWith(abandonedPrefix(node)) ? key.slice(abandonedPrefix(node).length) : '';
  const m = /^(\d+):(\d+):(\d+)$/.exec(rest);
  return m ? { bundle: Number(m[1]), offset: Number(m[2]), length: Number(m[3]) } : undefined;
}

export interface AdoptDeps {
  store: SonofsStore;
  db: SessionStore;
  opts: { root: string; node: string; ttlMs: number; fsync: boolean };
}

/**
 * Takes over an upload whose node is down, from this node's mirror of its
 * acknowledged bytes (mirror.ts): every received range must be in the
 * mirror and pass its check. The bytes go into space reserved here, synced,
 * then the session moves to this node in one compare-and-set step (only if
 * it still names the dead node and the same ranges); its old space is left
 * for that node to give back when it returns. Runs under the session's lock.
 * Undefined when this node cannot take it (no whole mirror, or it changed).
 */
export async function adoptSession(d: AdoptDeps, s: Session, deadNode: string): Promise<Session | undefined> {
  if (s.node !== deadNode || !s.space || (s.state !== 'active' && s.state !== 'paused')) return undefined;
  // its node began storing it as a file, or this member missed a write (its copy may hold other bytes)
  if (s.committing || s.mirrorMissed?.includes(d.opts.node)) return undefined;
  if (!await verifiedCover(d.opts.root, s.id, s.ranges)) return undefined;
  const slot = await d.store.writer.reserve(s.space.length);
  const space: SpaceRef = { bundle: slot.bundle, offset: slot.offset, length: slot.length };
  slot.finish();
  let adopted: Session | undefined;
  try {
    await copyRanges(d, s.id, s.ranges, space);
    adopted = await d.db.update(s.id, cur => (cur.node === deadNode && !cur.committing && sameRanges(cur.ranges, s.ranges)
      ? { ...cur, node: d.opts.node, space, expires: Date.now() + d.opts.ttlMs }
      : undefined));
  } finally {
    // an update that failed may still have applied (a lost answer): the space goes back only if the session does not name it
    const names = (cur: Session | undefined) => cur?.node === d.opts.node && cur.space?.bundle === space.bundle && cur.space?.offset === space.offset;
    let named = names(adopted);
    try {
      named ||= names(await d.db.get(s.id));
    } catch {
      named = true; // unknown: leave the space (compaction takes it) rather than release what the session may name
    }
    if (!named) await releaseSpace(d.opts.root, space);
  }
  if (adopted?.node !== d.opts.node || adopted.space?.offset !== space.offset || adopted.space?.bundle !== space.bundle) return undefined;
  await d.db.setKey(abandonedKey(deadNode, s.space), s.id);
  return adopted;
}

async function copyRanges(d: AdoptDeps, id: string, ranges: ByteRange[], space: SpaceRef): Promise<void> {
  const fd = d.store.files.acquire(space.bundle);
  try {
    for (const r of ranges) await readMirror(d.opts.root, id, r.start, r.end, (piece, at) => writevFully(fd, [ piece ], dataPosition(space, at)));
  } finally {
    d.store.files.release(space.bundle);
  }
  if (d.opts.fsync) await d.store.files.sync(space.bundle);
}

function sameRanges(a: ByteRange[], b: ByteRange[]): boolean {
  return a.length === b.length && a.every((r, i) => r.start === b[i].start && r.end === b[i].end);
}
