import type { ExpireHook, Session, SessionStore } from '../sessions';

/**
 * The fuploadServer task API's state, kept in the upload session's `extra`
 * (protocol 'task'), so any worker can serve a task and a callback not yet
 * delivered survives restarts. No Egg here: the routes and the agent glue
 * live in app/lib.
 */

/** A business server allowed to create tasks: the key of `servers` is its token. */
export interface FuploadServer {
  name: string;
  /** where the completion callback is POSTed */
  notifyUrl: string;
}

/** `config.sonofs.fupload`. */
export interface FuploadConfig {
  /** register the routes even when `servers` is empty */
  enabled: boolean;
  /** URL prefix (default `/api/upload`, as fuploadServer); its routes are exempt from CSRF */
  prefix: string;
  /** token → business server; a task is created only with one of these tokens */
  servers: Record<string, FuploadServer>;
  /** one callback attempt may take this long (ms, default 5 s) */
  notifyTimeout: number;
  /** callback attempts, the first included (default 5) */
  notifyAttempts: number;
  /** wait before the second attempt (ms, default 1 s); doubles after each failure */
  notifyDelay: number;
  /** how often the agent looks for callbacks due, e.g. after a restart (ms, default 5 s) */
  notifyScanInterval: number;
  /**
   * a task whose bytes are all in but which is still not stored this long
   * after its last block (its worker died while storing it) is handed to a worker again (ms, default 30 s)
   */
  finishRetryAfter: number;
  /**
   * attempts at storing a task whose bytes are all in, the first included
   * (default 5); after the last one fails the task fails: callback "-1"
   * `store error`, its bytes given back
   */
  finishAttempts: number;
}

/**
 * Callback outcome codes, as fuploadServer: "0" stored, "-1" failed (timed out,
 * or the file could not be stored), "-2" md5 mismatch.
 */
export type TaskRetCode = '0' | '-1' | '-2';

/** Delivery state of a task's callback. */
export interface NotifyState {
  retCode: TaskRetCode;
  status: 'ok' | 'time out' | 'md5 error' | 'store error';
  /** pending: to be (re)sent at nextAt; delivered: a 2xx came back; failed: every attempt failed */
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  queuedAt: number;
  nextAt: number;
  lastError?: string;
  deliveredAt?: number;
}

/** What a task keeps besides the session's own fields. */
export interface TaskExtra {
  /** the business server's name (from config) */
  server: string;
  notifyUrl: string;
  /** as the business server sent it (number or numeric string) */
  userId: number | string;
  /** metadata for the business server only: never a filesystem path here */
  storePath: string;
  fileName: string;
  /** md5 of the whole file, lowercase hex */
  fileMd5: string;
  feedBackParameter: unknown;
  notify?: NotifyState;
  /** attempts at storing the file once its bytes were all in (counted before each) */
  finishAttempts?: number;
  /** why the last attempt failed */
  finishError?: string;
}

/** Lookup-key prefix of tasks whose callback is queued. */
export const NOTIFY_PREFIX = 'fupload:notify:';

export const taskExtra = (s: Session) => s.extra as TaskExtra;

/** The task's status word: "upload" (taking blocks), "pause", "done", "cancel". */
export function taskStatus(s: Session): string {
  return { active: 'upload', paused: 'pause', done: 'done', cancelled: 'cancel' }[s.state];
}

/**
 * Queues the task's callback. Without `override` a callback already queued
 * stays as it is (two requests finishing the same task notify once); with it,
 * a pending "ok" becomes the given failure, unless the task was stored
 * meanwhile (its "ok" stands).
 */
export async function queueNotification(db: SessionStore, id: string, n: Pick<NotifyState, 'retCode' | 'status'>, override = false): Promise<void> {
  // The index first: a crash in between leaves an index entry without a callback, which the notifier skips.
  await db.setKey(NOTIFY_PREFIX + id, id);
  await db.update(id, cur => {
    const prev = taskExtra(cur).notify;
    if (prev && (!override || prev.state !== 'pending' || prev.retCode !== '0' || cur.state === 'done')) return undefined;
    return { ...cur, extra: { ...cur.extra, notify: pendingNotify(n) } };
  });
}

function pendingNotify(n: Pick<NotifyState, 'retCode' | 'status'>): NotifyState {
  const now = Date.now();
  return { retCode: n.retCode, status: n.status, state: 'pending', attempts: 0, queuedAt: now, nextAt: now };
}

/** The JSON POSTed to notifyUrl; undefined while an "ok" task is not stored yet. */
export function callbackPayload(s: Session): Record<string, unknown> | undefined {
  const x = taskExtra(s);
  const n = x.notify;
  if (!n || (n.retCode === '0' && (s.state !== 'done' || !s.result))) return undefined;
  const file = n.retCode === '0' ? s.result : undefined;
  return {
    retCode: n.retCode,
    status: n.status,
    data: x.feedBackParameter,
    taskId: s.id,
    fileId: file?.fileId ?? '',
    fileHash: file?.fileHash ?? '',
    fileName: x.fileName,
    fileSize: s.length,
    userId: x.userId,
    storePath: x.storePath,
  };
}

/**
 * For the expiry sweep: an expired task (its bytes are gone) stays as a
 * cancelled tombstone for `keepMs` carrying a "-1 time out" callback.
 */
export function taskExpireHook(db: SessionStore, keepMs: number): ExpireHook {
  return async s => {
    if (s.protocol !== 'task') return undefined;
    const prev = taskExtra(s).notify;
    // a more specific outcome (md5 error) already queued stays
    const notify = prev && (prev.retCode !== '0' || prev.state !== 'pending') ? prev : pendingNotify({ retCode: '-1', status: 'time out' });
    if (notify.state === 'pending') await db.setKey(NOTIFY_PREFIX + s.id, s.id);
    return { ...s, state: 'cancelled', expires: Date.now() + keepMs, extra: { ...s.extra, notify } };
  };
}
