/**
 * lmdb-js can fail a whole batch of asynchronous transactions with "Commit
 * failed" (MDB_NOTFOUND from its free-space list under heavy multi-process
 * writing: a known, open lmdb-js bug; seen twice in a million uploads here).
 * LMDB aborted that commit and applied nothing of it, so the transaction may
 * simply run again.
 */
const COMMIT_ATTEMPTS = 3;

/** Runs `commit` again when lmdb-js reports that its commit failed (the transaction was aborted, nothing applied). */
export async function retryFailedCommit<T>(commit: () => Promise<T>, attempts = COMMIT_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await commit();
    } catch (err) {
      const failedCommit = err instanceof Error && err.message.startsWith('Commit failed');
      // lmdb-js also rejects a promise with the cause that nobody would hold: this error stands for it.
      if (failedCommit) (err as { commitError?: Promise<unknown> }).commitError?.catch(() => undefined);
      if (!failedCommit || attempt >= attempts) throw err;
    }
  }
}
