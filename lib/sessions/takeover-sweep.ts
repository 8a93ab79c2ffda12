import { RecordKind } from '../bundle/record';
import fs from 'node:fs';
import { abandonedPrefix, parseAbandoned, stagingFile } from './adopt';
import { listMirrors, removeMirror } from './mirror';
import { readSpaceHeader, releaseSpace } from './space';
import type { SessionStore } from './types';

/** A mirror untouched this long, of an upload this node does not wait on, is dropped. */
const MIRROR_IDLE_MS = 60_000;

/**
 * What uploads taken over between nodes leave behind (cluster mode), swept
 * by the agent beside the expired sessions: the reserved space (or staging
 * file) of this node's uploads that another node took over while it was down
 * (a space is given back while still Pending: it never became a file), and the mirrors this node
 * kept of other nodes' uploads that are finished, gone, expired or its own now.
 */
export async function sweepTakeovers(db: SessionStore, root: string, node: string, now = Date.now()): Promise<{ released: number; mirrors: number }> {
  let released = 0;
  for (const { key } of await db.keys(abandonedPrefix(node), 1000)) {
    const left = parseAbandoned(key, node);
    if (left && 'staging' in left) {
      fs.rmSync(stagingFile(root, left.staging), { force: true });
      released++;
    } else if (left && readSpaceHeader(root, left)?.kind === RecordKind.Pending) {
      await releaseSpace(root, left);
      released++;
    }
    await db.setKey(key, undefined);
  }
  let mirrors = 0;
  for (const m of listMirrors(root)) {
    if (now - m.changed < MIRROR_IDLE_MS) continue;
    const s = await db.get(m.id);
    if (!s || s.node === node || (s.state !== 'active' && s.state !== 'paused') || s.expires < now) {
      removeMirror(root, m.id);
      mirrors++;
    }
  }
  return { released, mirrors };
}
