/** The page's side of the hashing worker (hash-worker.ts). */

export class HashCancelled extends Error {
  constructor() {
    super('hashing was cancelled');
  }
}

interface Pending {
  resolve(sha1: string): void;
  reject(err: Error): void;
  onProgress(done: number): void;
}

export interface HashJob {
  promise: Promise<string>;
  cancel(): void;
}

export class Hasher {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly url: string) {}

  /** whether this browser can hash off the page's thread (else the page uploads without 秒传) */
  get available(): boolean {
    return typeof Worker === 'function';
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.url);
    worker.onmessage = e => {
      const msg = e.data as { type: string; id: number; done?: number; sha1?: string; message?: string };
      const job = this.pending.get(msg.id);
      if (!job) return;
      if (msg.type === 'progress') return job.onProgress(msg.done ?? 0);
      this.pending.delete(msg.id);
      if (msg.type === 'done') job.resolve(msg.sha1!);
      else if (msg.type === 'cancelled') job.reject(new HashCancelled());
      else job.reject(new Error(`hashing failed: ${msg.message}`));
    };
    // a worker that cannot run (blocked, failed to load) fails every job: those files upload without 秒传
    worker.onerror = e => {
      e.preventDefault();
      for (const job of this.pending.values()) job.reject(new Error(`the hashing worker failed: ${e.message || 'could not load'}`));
      this.pending.clear();
      worker.terminate();
      this.worker = undefined;
    };
    this.worker = worker;
    return worker;
  }

  hash(file: Blob, onProgress: (done: number) => void): HashJob {
    const id = this.nextId++;
    const promise = new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      try {
        this.start().postMessage({ type: 'hash', id, file });
      } catch (err) {
        this.pending.delete(id);
        reject(err as Error);
      }
    });
    return {
      promise,
      cancel: () => {
        if (this.pending.has(id)) this.worker?.postMessage({ type: 'cancel', id });
      },
    };
  }
}
