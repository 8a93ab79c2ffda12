import type { Hash } from 'node:crypto';
import type { Session } from './types';

/** sha1 state of in-order uploads this process is receiving: no read-back at the end */
export class RunningHashes {
  private readonly hashes = new Map<string, { offset: number; hash: Hash }>();

  /** The running sha1 of a session and the offset it covers up to, if this process holds one. */
  get(id: string): { offset: number; hash: Hash } | undefined {
    return this.hashes.get(id);
  }

  /** Keeps the sha1 of a session's first `offset` bytes; the oldest goes past 1000. */
  remember(id: string, offset: number, hash: Hash): void {
    this.hashes.delete(id);
    this.hashes.set(id, { offset, hash });
    if (this.hashes.size > 1000) this.hashes.delete(this.hashes.keys().next().value!);
  }

  forget(id: string): void {
    this.hashes.delete(id);
  }

  /** sha1 and crc32c of a session received in order by this process, without reading it back. */
  cachedDigest(s: Session): { sha1: Buffer; crc: number } | undefined {
    const h = this.hashes.get(s.id);
    if (!h || h.offset !== s.length || s.crc === undefined || s.offset !== s.length) return undefined;
    return { sha1: h.hash.copy().digest(), crc: s.crc };
  }
}
