import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from './bundle-files';

/** Settings that fix where records can start; a store keeps the ones it was created with. */
export interface StoreLayout {
  format: 1;
  extentSize: number;
  bundleSize: number;
}

const FILE = 'layout.json';

/**
 * A scan steps to the next extent boundary after the used part of an extent,
 * so the extent size must not change under existing bundles. The first start
 * writes root/layout.json; later starts must agree with it.
 */
export function fixLayout(root: string, want: { extentSize: number; bundleSize: number }): StoreLayout {
  const file = path.join(root, FILE);
  let saved: StoreLayout | undefined;
  try {
    saved = JSON.parse(fs.readFileSync(file, 'utf8')) as StoreLayout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`[egg-sonofs] ${file} is unreadable: ${(err as Error).message}`);
  }
  if (saved) {
    for (const key of [ 'extentSize', 'bundleSize' ] as const) {
      if (saved[key] !== want[key]) {
        throw new Error(`[egg-sonofs] the store under ${root} was created with ${key} ${saved[key]}; config.sonofs.${key} is ${want[key]}. ` +
          'Set it back: records in existing bundles are laid out by it.');
      }
    }
    return saved;
  }
  const layout: StoreLayout = { format: 1, extentSize: want.extentSize, bundleSize: want.bundleSize };
  fs.mkdirSync(root, { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(layout) + '\n', { flush: true });
  fs.renameSync(tmp, file);
  fsyncDir(root);
  return layout;
}

/** The layout a store was created with, for tools that only scan. */
export function readLayout(root: string): StoreLayout | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, FILE), 'utf8')) as StoreLayout;
  } catch {
    return undefined;
  }
}
