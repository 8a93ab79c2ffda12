import type { ExtentAllocator } from './bundle/allocator';
import type { ExtentLease } from './catalog/types';
import { SonofsError, UnavailableError } from './errors';
import type { ExtentSource } from './bundle/slot-writer';

/**
 * How workers get space from the node's leader (the Egg agent) over the
 * egg-cluster messenger. Requests, replies and broadcasts use different
 * action names, because in single-process tests every message reaches every
 * listener. Each request carries an id and the worker's pid; the leader
 * replies to that pid only.
 */
export const ACTIONS = {
  allocate: 'sonofs:allocate',
  release: 'sonofs:release',
  reply: 'sonofs:reply',
  /** broadcast by a (re)started leader: workers retry anything in flight */
  leaderUp: 'sonofs:leader-up',
} as const;

export interface AllocateRequest {
  id: number;
  pid: number;
  bytes: number;
}

export interface ReleaseRequest {
  pid: number;
  lease: ExtentLease;
}

export interface Reply {
  id: number;
  pid: number;
  lease?: ExtentLease;
  error?: { status: number; code: string; message: string };
}

/** The part of Egg's app messenger a worker uses. */
export interface WorkerMessenger {
  sendToAgent(action: string, data: unknown): void;
  on(action: string, listener: (data: any) => void): void;
}

/** The part of Egg's agent messenger the leader uses. */
export interface LeaderMessenger {
  sendTo(pid: number, action: string, data: unknown): void;
  sendToApp(action: string, data: unknown): void;
  on(action: string, listener: (data: any) => void): void;
  removeListener(action: string, listener: (data: any) => void): void;
}

/**
 * Leader side: answers allocation requests from workers. Returns `stop`, for
 * before the catalog closes: a release that comes later leaves its lease open,
 * and the next start rescans that extent, as after a crash.
 */
export function serveAllocations(messenger: LeaderMessenger, allocator: ExtentAllocator, log: (err: Error) => void): () => void {
  // A worker re-sends a request that got no reply in time; answer it from the
  // same allocation instead of leasing a second extent.
  const recent = new Map<string, Promise<ExtentLease>>();
  const allocate = (req: AllocateRequest) => {
    const key = `${req.pid}:${req.id}`;
    let lease = recent.get(key);
    if (!lease) {
      lease = allocator.allocate(req.bytes, req.pid);
      recent.set(key, lease);
      if (recent.size > 1000) recent.delete(recent.keys().next().value!);
    }
    lease.then(
      lease => messenger.sendTo(req.pid, ACTIONS.reply, { id: req.id, pid: req.pid, lease } satisfies Reply),
      (err: Error) => {
        log(err);
        const e = err instanceof SonofsError ? err : new UnavailableError('ALLOCATION_FAILED', `allocation failed: ${err.message}`);
        messenger.sendTo(req.pid, ACTIONS.reply, {
          id: req.id, pid: req.pid, error: { status: e.status, code: e.code, message: e.message },
        } satisfies Reply);
      });
  };
  const release = (req: ReleaseRequest) => {
    allocator.release(req.lease.bundle, req.lease.offset).catch(log);
  };
  messenger.on(ACTIONS.allocate, allocate);
  messenger.on(ACTIONS.release, release);
  return () => {
    messenger.removeListener(ACTIONS.allocate, allocate);
    messenger.removeListener(ACTIONS.release, release);
  };
}

interface Pending {
  bytes: number;
  resolve: (lease: ExtentLease) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  deadline: number;
}

/**
 * Worker side: an ExtentSource that asks the leader. A request that gets no
 * answer (the agent is restarting) is re-sent until `timeoutMs` has passed,
 * and at once when a new leader announces itself.
 */
export class AgentExtentSource implements ExtentSource {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly messenger: WorkerMessenger, private readonly timeoutMs = 15_000, private readonly retryMs = 2_000) {
    messenger.on(ACTIONS.reply, (reply: Reply) => this.onReply(reply));
    messenger.on(ACTIONS.leaderUp, () => {
      for (const [ id, p ] of this.pending) this.send(id, p.bytes);
    });
  }

  allocate(bytes: number): Promise<ExtentLease> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const p: Pending = { bytes, resolve, reject, timer: undefined!, deadline: Date.now() + this.timeoutMs };
      this.pending.set(id, p);
      this.arm(id, p);
      this.send(id, bytes);
    });
  }

  release(lease: ExtentLease): void {
    this.messenger.sendToAgent(ACTIONS.release, { pid: process.pid, lease } satisfies ReleaseRequest);
  }

  /** Fails everything in flight (worker shutdown). */
  close(): void {
    for (const [ id, p ] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new UnavailableError('SHUTTING_DOWN', 'the worker is shutting down'));
    }
  }

  private send(id: number, bytes: number) {
    this.messenger.sendToAgent(ACTIONS.allocate, { id, pid: process.pid, bytes } satisfies AllocateRequest);
  }

  private arm(id: number, p: Pending) {
    const wait = Math.min(this.retryMs, p.deadline - Date.now());
    p.timer = setTimeout(() => {
      if (Date.now() >= p.deadline) {
        this.pending.delete(id);
        p.reject(new UnavailableError('AGENT_TIMEOUT', `the sonofs agent did not allocate space within ${this.timeoutMs} ms`));
        return;
      }
      this.send(id, p.bytes);
      this.arm(id, p);
    }, Math.max(wait, 1));
    p.timer.unref();
  }

  private onReply(reply: Reply) {
    if (reply.pid !== process.pid) return;
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    clearTimeout(p.timer);
    if (reply.lease) p.resolve(reply.lease);
    else p.reject(new SonofsError(reply.error?.status ?? 503, reply.error?.code ?? 'ALLOCATION_FAILED', reply.error?.message ?? 'allocation failed'));
  }
}
