import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from './files';

/** Settings that fix where records can start; a store keeps the ones it was created with. */
export interface StoreLayout {
  format: 1;
  extentSize: number;
  bundleSize: number;
  /** the node identity written into every file id of this store */
  group: number;
  server: number;
}

type Pinned = Omit<StoreLayout, 'format'>;
const PINNED = [ 'extentSize', 'bundleSize', 'group', 'server' ] as const;

/** Why each pinned setting cannot change under an existing store. */
const WHY: Record<keyof Pinned, string> = {
  extentSize: 'records in existing bundles are laid out by it',
  bundleSize: 'records in existing bundles are laid out by it',
  group: 'every file id this store handed out names it, and ids of another group are not read here',
  server: 'every file id this store handed out names it, and ids of another server are not read here',
};

const FILE = 'layout.json';

/**
 * A scan steps to the next extent boundary after the used part of an extent,
 * so the extent size must not change under existing bundles; file ids carry
 * the node's group and server, so those are fixed too. The first start
 * writes root/layout.json; later starts must agree with it.
 * `adopted` lists settings a store from an older version did not record yet;
 * `held` is the identity its stored file ids carry, if it has any.
 */
export function fixLayout(root: string, want: Pinned, held?: Pick<Pinned, 'group' | 'server'>): StoreLayout & { adopted: string[] } {
  const file = path.join(root, FILE);
  let saved: StoreLayout | undefined;
  try {
    saved = JSON.parse(fs.readFileSync(file, 'utf8')) as StoreLayout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`[egg-sonofs] ${file} is unreadable: ${(err as Error).message}`);
  }
  const adopted: string[] = [];
  if (saved) {
    for (const key of PINNED) {
      // A store from before identity was pinned: the ids it handed out say which it has.
      const was = saved[key] ?? (key === 'group' || key === 'server' ? held?.[key] : undefined);
      if (saved[key] === undefined && (was === undefined || was === want[key])) {
        adopted.push(key);
      } else if (was !== want[key]) {
        throw new Error(`[egg-sonofs] the store under ${root} was created with ${key} ${was}; config.sonofs.${key} is ${want[key]}. ` +
          `Set config.sonofs.${key} to ${was}: ${WHY[key]}. (Another value needs another root.)`);
      }
    }
    if (!adopted.length) return { ...saved, adopted };
  }
  const layout: StoreLayout = { format: 1, extentSize: want.extentSize, bundleSize: want.bundleSize, group: want.group, server: want.server };
  write(root, file, layout);
  return { ...layout, adopted };
}

function write(root: string, file: string, layout: StoreLayout): void {
  fs.mkdirSync(root, { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(layout) + '\n', { flush: true });
  fs.renameSync(tmp, file);
  fsyncDir(root);
}

/** The layout a store was created with, for tools that only scan. */
export function readLayout(root: string): StoreLayout | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, FILE), 'utf8')) as StoreLayout;
  } catch {
    return undefined;
  }
}
