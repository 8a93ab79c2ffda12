import assert from 'node:assert';
import type { NodeOptions } from './standalone';

const u8 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255;
const positive = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/** Checks a node's settings once, at start-up, with messages that name the setting. */
export function checkNodeOptions(raw: Partial<NodeOptions>): NodeOptions {
  const o = raw as NodeOptions;
  assert(typeof o.root === 'string' && o.root, '[egg-sonofs] config.sonofs.root must be a directory path');
  assert(u8(o.group), `[egg-sonofs] config.sonofs.group must be an integer 0-255, got ${o.group}`);
  assert(u8(o.server), `[egg-sonofs] config.sonofs.server must be an integer 0-255, got ${o.server}`);
  assert(positive(o.extentSize) && o.extentSize % 8 === 0, '[egg-sonofs] config.sonofs.extentSize must be a positive multiple of 8');
  assert(positive(o.bundleSize) && o.bundleSize % o.extentSize === 0, '[egg-sonofs] config.sonofs.bundleSize must be a multiple of extentSize');
  assert(positive(o.maxFileSize) && o.maxFileSize < 2 ** 40, '[egg-sonofs] config.sonofs.maxFileSize must be between 1 byte and 1 TiB');
  return { ...o, fsync: o.fsync !== false };
}
