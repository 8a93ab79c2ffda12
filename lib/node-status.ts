import fs from 'node:fs';
import { bundlePath, listBundles } from './bundle/files';
import type { SonofsStore } from './store';

export type CheckLevel = 'ok' | 'warn' | 'fail';

export interface StatusCheck {
  name: string;
  level: CheckLevel;
  detail: string;
}

/** What a node says about its health and its space (GET <prefix>/status). */
export interface NodeStatus {
  /** the worst level of the checks: `fail` means the node cannot store files */
  status: CheckLevel;
  group: number;
  server: number;
  root: string;
  /** the filesystem holding the root, in bytes (`available`: what this process may still write) */
  disk: { total: number; free: number; available: number };
  /** bundle files: how many, their length (sparse) and the disk they really take */
  bundles: { count: number; length: number; allocated: number };
  limits: { maxFileSize: number; extentSize: number; bundleSize: number };
  fsync: boolean;
  checks: StatusCheck[];
}

const LEVELS: CheckLevel[] = [ 'ok', 'warn', 'fail' ];

/** Below this share of the disk free, the space check warns. */
const LOW_SPACE_SHARE = 0.05;

async function timed(name: string, probe: () => Promise<string>): Promise<StatusCheck> {
  try {
    return { name, level: 'ok', detail: await probe() };
  } catch (err) {
    return { name, level: 'fail', detail: (err as Error).message };
  }
}

/**
 * Health and space of the node whose store this is: the catalog answers a
 * read, the root is writable, and the disk has room for at least one more
 * extent (a warning below 5% free; a failure when not even one extent fits,
 * since a worker can then store nothing new).
 */
export async function nodeStatus(store: SonofsStore, opts: { bundleSize: number }): Promise<NodeStatus> {
  const { root, group, server, extentSize, maxFileSize, fsync } = store.opts;
  const checks: StatusCheck[] = [];
  checks.push(await timed('catalog', async () => {
    const started = process.hrtime.bigint();
    // a lookup like every read's (LMDB here, Redis in cluster mode)
    await store.catalog.getBlob('0'.repeat(40));
    return `read in ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(2)} ms`;
  }));
  checks.push(await timed('root', async () => {
    await fs.promises.access(root, fs.constants.W_OK);
    return 'writable';
  }));
  const fsStats = await fs.promises.statfs(root);
  const disk = { total: fsStats.blocks * fsStats.bsize, free: fsStats.bfree * fsStats.bsize, available: fsStats.bavail * fsStats.bsize };
  const share = disk.total ? disk.available / disk.total : 0;
  const spaceLevel: CheckLevel = disk.available < extentSize ? 'fail' : share < LOW_SPACE_SHARE ? 'warn' : 'ok';
  checks.push({ name: 'space', level: spaceLevel, detail: `${(share * 100).toFixed(1)}% of the disk available` });

  const bundles = { count: 0, length: 0, allocated: 0 };
  for (const n of listBundles(root)) {
    // a bundle may be created by a worker between the listing and this stat
    const st = await fs.promises.stat(bundlePath(root, n)).catch(() => undefined);
    if (!st) continue;
    bundles.count++;
    bundles.length += st.size;
    bundles.allocated += st.blocks * 512;
  }
  const status = LEVELS[Math.max(...checks.map(c => LEVELS.indexOf(c.level)))];
  return {
    status, group, server, root, disk, bundles,
    limits: { maxFileSize, extentSize, bundleSize: opts.bundleSize },
    fsync, checks,
  };
}
