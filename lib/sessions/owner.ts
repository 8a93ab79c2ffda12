import { UploadElsewhereError } from '../errors';
import type { Session } from './types';

/**
 * True when this node holds the session's bytes, or it has none to hold. In
 * cluster mode sessions are shared but their reserved space or staging file
 * is on one node's disk: another node reading or writing "the same" extent
 * would touch its own bundles at those offsets.
 */
export function bytesAreHere(s: Session, node: string): boolean {
  return !s.node || s.node === node || (s.state !== 'active' && s.state !== 'paused') || (!s.space && !s.staging);
}

/** Refuses (503, naming the owner) an operation on bytes that are on another node's disk. */
export function assertBytesHere(s: Session, node: string): void {
  if (!bytesAreHere(s, node)) throw new UploadElsewhereError(s.node!);
}
