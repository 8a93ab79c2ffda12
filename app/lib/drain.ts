import type { Context } from 'egg';

/**
 * Counts the requests a worker is serving, so that on shutdown (egg-scripts
 * stop, SIGTERM) it lets them finish before closing its catalog and session
 * store; otherwise an upload in flight would end in a 500 "Database is closed".
 */
export class RequestDrain {
  private inflight = 0;
  private idle: Array<() => void> = [];

  async track(next: () => Promise<void>): Promise<void> {
    this.inflight++;
    try {
      await next();
    } finally {
      if (--this.inflight === 0) this.idle.splice(0).forEach(wake => wake());
    }
  }

  /** Resolves when no request is in progress, or after `ms` (egg-cluster kills a worker 5 s after SIGTERM). */
  async drained(ms: number): Promise<void> {
    if (this.inflight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>(resolve => this.idle.push(resolve)),
      new Promise<void>(resolve => { timer = setTimeout(resolve, ms); }),
    ]);
    clearTimeout(timer);
  }
}

const DRAIN = Symbol.for('egg-sonofs#drain');

/** The worker's request counter (one per Application). */
export function requestDrain(app: Context['app']): RequestDrain {
  const a = app as unknown as { [DRAIN]?: RequestDrain };
  a[DRAIN] ??= new RequestDrain();
  return a[DRAIN]!;
}
