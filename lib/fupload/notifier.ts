import http from 'node:http';
import https from 'node:https';
import type { Session, SessionStore } from '../sessions';
import { NOTIFY_PREFIX, NotifyState, callbackPayload, taskExtra } from './task';

export interface NotifierOptions {
  /** one attempt may take this long (ms) */
  timeout: number;
  /** attempts, the first included */
  attempts: number;
  /** wait before the second attempt (ms); doubles after each failure */
  delay: number;
  /** how often queued callbacks are looked for (ms) */
  scanInterval: number;
  /** a task whose bytes are all in but that is still not stored after this long is handed back (ms) */
  stuckAfter: number;
  /**
   * Which tasks this notifier delivers (all when absent). With sessions
   * shared by a cluster, each node delivers those whose bytes it holds: it
   * alone can store a stuck one, and no task has two senders.
   */
  owns?: (s: Session) => boolean;
}

export interface NotifierLog {
  info(msg: string, ...args: unknown[]): void;
  warn(msg: string, ...args: unknown[]): void;
  error(err: unknown): void;
}

/** POSTs JSON; resolves to the HTTP status, rejects on a network error or after `timeoutMs`. */
export type PostJson = (url: string, body: unknown, timeoutMs: number) => Promise<number>;

export const postJson: PostJson = (url, body, timeoutMs) => new Promise((resolve, reject) => {
  const u = new URL(url);
  const data = Buffer.from(JSON.stringify(body));
  const req = (u.protocol === 'https:' ? https : http).request(u, {
    method: 'POST',
    agent: false,
    headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, 'User-Agent': 'egg-sonofs' },
  }, res => {
    res.resume();
    res.on('end', () => resolve(res.statusCode ?? 0));
    res.on('error', reject);
  });
  const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  req.on('close', () => clearTimeout(timer));
  req.on('error', reject);
  req.end(data);
});

/**
 * Delivers task callbacks: one process per node runs it (the agent), so a
 * callback is never sent by two processes at once. Its state lives in the
 * task's session (attempts, next attempt, delivered or failed) and queued
 * tasks are indexed by lookup key, so a restart picks up where it stopped.
 * A non-2xx answer, a network error or a timeout is retried with exponential
 * back-off until the attempts are used up.
 */
export class TaskNotifier {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly busy = new Map<string, Promise<void>>();
  private readonly stuckAsked = new Map<string, number>();
  private scanTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param finish asks a worker to store a task whose bytes are all in but
   * which is still not a file (its worker died or failed while storing it)
   */
  constructor(
    private readonly db: SessionStore,
    private readonly opts: NotifierOptions,
    private readonly log: NotifierLog,
    private readonly finish: (id: string) => void,
    private readonly post: PostJson = postJson,
  ) {}

  start(): void {
    this.scan();
    this.scanTimer = setInterval(() => this.scan(), this.opts.scanInterval);
    this.scanTimer.unref();
  }

  /** Looks at every queued callback: sends those due, schedules the others. */
  scan(): void {
    this.db.keys(NOTIFY_PREFIX, 10_000)
      .then(entries => entries.forEach(e => this.kick(e.id)))
      .catch(err => this.log.error(err));
  }

  /** Sends the task's callback now if it is due (a worker just queued it). */
  kick(id: string): void {
    if (this.closed || this.busy.has(id) || this.timers.has(id)) return;
    const p = this.deliver(id)
      .catch(err => this.log.error(err))
      .finally(() => this.busy.delete(id));
    this.busy.set(id, p);
  }

  /** Stops; resolves once deliveries in flight are recorded (a callback cut off here is sent again later). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.scanTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await Promise.all(this.busy.values());
  }

  private schedule(id: string, at: number): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(id);
      this.kick(id);
    }, Math.max(0, at - Date.now()));
    t.unref();
    this.timers.set(id, t);
  }

  private async deliver(id: string): Promise<void> {
    const key = NOTIFY_PREFIX + id;
    const s = await this.db.get(id);
    if (!s) return this.db.setKey(key, undefined);
    if (this.opts.owns && !this.opts.owns(s)) return;
    const n = taskExtra(s).notify;
    if (n && n.state !== 'pending') return this.db.setKey(key, undefined);
    const payload = n && callbackPayload(s);
    if (!n || !payload) {
      // queued before the task was stored: its worker is storing it; if that takes too long, hand it to a worker again
      const since = n?.queuedAt ?? s.created;
      const asked = this.stuckAsked.get(id) ?? 0;
      if ((s.state === 'active' || s.state === 'paused') && Date.now() - Math.max(since, asked) > this.opts.stuckAfter) {
        this.stuckAsked.set(id, Date.now());
        this.finish(id);
      }
      return;
    }
    this.stuckAsked.delete(id);
    if (n.nextAt > Date.now()) return this.schedule(id, n.nextAt);

    let error: string | undefined;
    try {
      const status = await this.post(taskExtra(s).notifyUrl, payload, this.opts.timeout);
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      error = (err as Error).message || String(err);
    }
    const attempts = n.attempts + 1;
    const now = Date.now();
    let next: NotifyState;
    if (!error) next = { ...n, state: 'delivered', attempts, deliveredAt: now, lastError: undefined };
    else if (attempts >= this.opts.attempts) next = { ...n, state: 'failed', attempts, lastError: error };
    else next = { ...n, attempts, lastError: error, nextAt: now + this.opts.delay * 2 ** (attempts - 1) };
    await this.db.update(id, cur => ({ ...cur, extra: { ...cur.extra, notify: next } }));
    if (next.state === 'pending') return this.schedule(id, next.nextAt);
    await this.db.setKey(key, undefined);
    if (next.state === 'failed') {
      this.log.warn('[egg-sonofs] fupload callback for task %s to %s failed %d times, last: %s; given up', id, taskExtra(s).notifyUrl, attempts, error);
    } else {
      this.log.info('[egg-sonofs] fupload callback for task %s delivered (retCode %s, attempt %d)', id, n.retCode, attempts);
    }
  }
}
