/**
 * The hashing worker: sha1 of a file, read a slice at a time (never the
 * whole file in memory), off the page's thread. WebCrypto has no streaming
 * sha1, so hash-wasm's incremental one. One file at a time, in order;
 * progress after each slice; a job can be cancelled between slices.
 *
 * in:  { type: 'hash', id, file } | { type: 'cancel', id }
 * out: { type: 'progress', id, done } | { type: 'done', id, sha1 } | { type: 'cancelled', id } | { type: 'error', id, message }
 */
import { createSHA1 } from 'hash-wasm';

const SLICE = 4 * 1024 * 1024;

interface Job { id: number; file: Blob }

// typed by hand: the page's type-check has the DOM's types, not a worker's
const scope = self as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(message: unknown): void };

const queue: Job[] = [];
const cancelled = new Set<number>();
let running = false;
let hasher: Awaited<ReturnType<typeof createSHA1>> | undefined;

async function hash(job: Job): Promise<void> {
  hasher ??= await createSHA1();
  hasher.init();
  const { file, id } = job;
  for (let at = 0; at < file.size; at += SLICE) {
    if (cancelled.delete(id)) {
      scope.postMessage({ type: 'cancelled', id });
      return;
    }
    const bytes = new Uint8Array(await file.slice(at, Math.min(at + SLICE, file.size)).arrayBuffer());
    hasher.update(bytes);
    scope.postMessage({ type: 'progress', id, done: at + bytes.length });
  }
  scope.postMessage({ type: 'done', id, sha1: hasher.digest('hex') });
}

async function pump(): Promise<void> {
  if (running) return;
  running = true;
  for (let job = queue.shift(); job; job = queue.shift()) {
    if (cancelled.delete(job.id)) {
      scope.postMessage({ type: 'cancelled', id: job.id });
      continue;
    }
    try {
      await hash(job);
    } catch (err) {
      scope.postMessage({ type: 'error', id: job.id, message: (err as Error)?.message ?? String(err) });
    }
  }
  running = false;
}

scope.onmessage = e => {
  const msg = e.data as { type: string; id: number; file?: Blob };
  if (msg.type === 'cancel') cancelled.add(msg.id);
  else if (msg.type === 'hash' && msg.file) queue.push({ id: msg.id, file: msg.file });
  void pump();
};
