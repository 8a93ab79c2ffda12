import type { Agent } from 'egg';
import type { ExpireHook, SessionStore } from '../../lib';
import { TaskNotifier, taskExpireHook } from '../../lib/fupload';

/** Messenger actions of the fupload task API (requests and replies use different names, see docs/egg-toolchain.md). */
export const FUPLOAD_ACTIONS = {
  /** worker → agent: a task's callback was queued, send it */
  notify: 'sonofs:fupload:notify',
  /** agent → one worker: store a task whose bytes are all in but which is still not a file */
  finish: 'sonofs:fupload:finish',
};

/**
 * The agent's part: the one callback sender of the node (retries, redelivery
 * after restarts from the state kept in the sessions), and the hook that turns
 * an expired task into a "-1 time out" callback. Undefined when fupload is off.
 */
export function startFuploadAgent(agent: Agent, db: SessionStore, node: string): { onExpire: ExpireHook; afterSweep(): void; close(): Promise<void> } | undefined {
  const sonofs = agent.config.sonofs;
  const cfg = sonofs.fupload;
  if (!cfg || !(cfg.enabled || Object.keys(cfg.servers ?? {}).length)) return undefined;
  const notifier = new TaskNotifier(db, {
    timeout: cfg.notifyTimeout, attempts: cfg.notifyAttempts, delay: cfg.notifyDelay, scanInterval: cfg.notifyScanInterval, stuckAfter: cfg.finishRetryAfter,
    // sessions are shared in cluster mode: each node sends the callbacks of the tasks on its disk
    owns: s => !s.node || s.node === node,
  }, {
    info: (msg, ...args) => agent.coreLogger.info(msg, ...args),
    warn: (msg, ...args) => agent.coreLogger.warn(msg, ...args),
    error: err => agent.coreLogger.error(err as Error),
  }, id => agent.messenger.sendRandom(FUPLOAD_ACTIONS.finish, { id })); // one worker: it counts the attempt in the task
  agent.messenger.on(FUPLOAD_ACTIONS.notify, ({ id }: { id: string }) => notifier.kick(id));
  notifier.start();
  return {
    onExpire: taskExpireHook(db, sonofs.uploads.doneTtl),
    afterSweep: () => notifier.scan(),
    close: () => notifier.close(),
  };
}
