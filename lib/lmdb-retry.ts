/**
 * lmdb-js can fail a whole batch of asynchronous transactions with "Commit
 * failed" (MDB_NOTFOUND from its free-space list under heavy multi-process
 * writing: a known, open lmdb-js bug; seen once or twice per million uploads here).
 * LMDB aborted that commit and applied nothing of it, so the transaction may
 * simply run again.
 */
/** Waits before each new attempt: commits tried again at once failed together (seen: a burst lasts under a second). */
const RETRY_DELAYS_MS = [ 20, 200, 1000 ];

/** Runs `commit` again when lmdb-js reports that its commit failed (the transaction was aborted, nothing applied). */
export async function retryFailedCommit<T>(commit: () => Promise<T>, delaysMs: readonly number[] = RETRY_DELAYS_MS): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await commit();
    } catch (err) {
      const failedCommit = err instanceof Error && err.message.startsWith('Commit failed');
      // lmdb-js also rejects a promise with the cause that nobody would hold: this error stands for it.
      if (failedCommit) ignoreOutcome((err as { commitError?: unknown }).commitError);
      if (!failedCommit || attempt >= delaysMs.length) throw err;
      await new Promise(resolve => setTimeout(resolve, delaysMs[attempt]));
    }
  }
}

/**
 * A put or remove inside a transaction callback returns a promise of the
 * batch's commit of its own; the transaction's promise reports the outcome,
 * so these must not surface as unhandled rejections when a commit fails.
 */
export function ignoreOutcome(p: unknown): void {
  if (p && typeof (p as Promise<unknown>).catch === 'function') (p as Promise<unknown>).catch(() => undefined);
}

interface TxnDb {
  put(key: unknown, value: unknown): unknown;
  remove(key: unknown): unknown;
  transaction<T>(fn: () => T): Promise<T>;
}

/**
 * Writes for an lmdb-js database: `transaction` runs again when lmdb-js fails
 * its commit (its callback may thus run more than once), and `put` / `del`
 * inside a callback leave the outcome to the transaction.
 */
export function txnWrites<K>(db: TxnDb) {
  return {
    transaction: <T>(fn: () => T): Promise<T> => retryFailedCommit(() => db.transaction(fn)),
    put: (key: K, value: unknown): void => ignoreOutcome(db.put(key, value)),
    del: (key: K): void => ignoreOutcome(db.remove(key)),
  };
}
