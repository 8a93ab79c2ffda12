import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../bundle/files';

const FILE = 'cluster-instance';

/**
 * The id of the node whose data lives under `root`: created on the first
 * start in cluster mode and kept there, so a node that restarts (after a
 * crash, with its old registry entry still live) is recognised as itself, and
 * another data root claiming the same group and server is not. Call it while
 * holding the root's lock.
 */
export function nodeInstanceId(root: string): string {
  const file = path.join(root, FILE);
  try {
    const id = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(id)) return id;
    throw new Error(`[egg-sonofs] ${file} does not hold an instance id (32 hex digits); remove it only if no other node uses this root`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = randomBytes(16).toString('hex');
  fs.mkdirSync(root, { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, `${id}\n`, { flush: true });
  fs.renameSync(tmp, file);
  fsyncDir(root);
  return id;
}
