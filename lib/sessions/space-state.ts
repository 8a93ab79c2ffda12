import fs from 'node:fs';
import { RecordKind } from '../bundle/record';
import type { BundleFiles } from '../bundle/files';
import { releaseSpace, readSpaceHeader } from './space';
import type { Session } from './types';

/** True while a session's reserved space still carries its Pending header (not yet a file). */
export function spaceIsPending(root: string, s: Session, files?: BundleFiles): boolean {
  return readSpaceHeader(root, s.space!, files)?.kind === RecordKind.Pending;
}

/** True once a session's space holds its stored file's record. */
export function spaceIsCommitted(root: string, s: Session, files: BundleFiles): boolean {
  const kind = readSpaceHeader(root, s.space!, files)?.kind;
  return kind !== undefined && kind !== RecordKind.Pending && kind !== RecordKind.Padding;
}

/** A reserved space goes back as Padding (unless it already holds the committed file); staging is deleted. */
export async function discardSessionBytes(root: string, s: Session): Promise<void> {
  if (s.space && spaceIsPending(root, s)) await releaseSpace(root, s.space);
  if (s.staging) fs.rmSync(s.staging, { force: true });
}
