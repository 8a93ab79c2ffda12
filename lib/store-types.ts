/** The store's options, and what its uploads and reads take and answer (store.ts). */

export interface StoreOptions {
  /** where bundles live */
  root: string;
  /** this node's group and server numbers (0–255), written into every file id */
  group: number;
  server: number;
  /** unit a worker leases from the leader */
  extentSize: number;
  /** largest file accepted, in bytes */
  maxFileSize: number;
  /** fdatasync bundles (group commit) before acknowledging an upload */
  fsync: boolean;
  /** bytes of an unknown-length stream read before space is reserved */
  probeSize?: number;
  /** largest file getFile() returns as a Buffer; larger ones must be streamed */
  maxBufferSize?: number;
}

export interface UploadOptions {
  user: string;
  filename?: string;
  mime?: string;
  /** exact size, when known (a mismatch is a 400) */
  size?: number;
  /** an upper bound on the size, e.g. the request's Content-Length */
  sizeBound?: number;
}

export interface UploadResult {
  fileId: string;
  /** sha1 of the content, hex */
  fileHash: string;
  size: number;
  mime: string;
  filename: string;
  /** when this upload was recorded (ms) */
  uploadAt: number;
  /** true when the bytes were already stored and only a link was added */
  deduplicated: boolean;
  /**
   * Cluster mode, new content: the nodes holding it synced when this was
   * acknowledged, this one included (replication 'all' waits for the group's
   * live members). Absent in embedded mode and for deduplicated content.
   */
  copies?: number;
}

/** A record just made durable here: [start, end) of its bundle. */
export interface DurableRecord {
  bundle: number;
  start: number;
  end: number;
}

/** Makes a new record's copies on other nodes (cluster mode); resolves with how many nodes hold it, this one included. */
export type CopyRecord = (rec: DurableRecord) => Promise<number>;

/** Space a record is written into: a worker's slot, or a resumable upload's reserved region. */
export interface RecordSpace {
  readonly bundle: number;
  readonly offset: number;
  readonly length: number;
  writeSync(buf: Buffer, pos?: number): void;
  /** The record turned out `used` bytes long; returns the length to put in its header. */
  shrinkTo(used: number): number;
}

/** What a resumable upload knows once all its bytes are written into its space. */
export interface SpaceCommit {
  user: string;
  filename?: string;
  mime?: string;
  size: number;
  /** sha1 and crc32c of the data */
  sha1: Buffer;
  crc: number;
}

export interface FileStat {
  fileId: string;
  fileHash: string;
  size: number;
  mime: string;
  /** when the content was stored (ms) */
  time: number;
}

export interface StoredFile {
  mime: string;
  size: number;
  buffer: Buffer;
}

export interface ReadRange {
  /** first byte, inclusive */
  start?: number;
  /** last byte, inclusive */
  end?: number;
}
