import assert from 'node:assert/strict';
import { commitSync, retryFailedCommit } from '../../lib/lmdb-retry';
import { NotFoundError } from '../../lib';

/** What lmdb-js rejects a batch of transactions with when LMDB aborted their commit. */
function commitFailed(): Error {
  return Object.assign(new Error('Commit failed (see commitError for details)'), {
    commitError: Promise.reject(Object.assign(new Error('MDB_NOTFOUND: No matching key/data pair found'), { code: -30798 })),
  });
}

describe('lib: lmdb commits that lmdb-js failed', () => {
  it('runs a transaction again when lmdb-js reports its commit failed', async () => {
    let calls = 0;
    const result = await retryFailedCommit(async () => {
      calls++;
      if (calls === 1) throw commitFailed();
      return 'committed';
    }, [ 1 ]);
    assert.equal(result, 'committed');
    assert.equal(calls, 2);
  });

  it('gives up after four failed commits, with the error', async () => {
    let calls = 0;
    const started = Date.now();
    await assert.rejects(retryFailedCommit(async () => {
      calls++;
      throw commitFailed();
    }, [ 5, 20, 40 ]), /Commit failed/);
    assert.equal(calls, 4);
    // with a pause before each new attempt (attempts at once failed together)
    assert.ok(Date.now() - started >= 60, `took ${Date.now() - started} ms`);
  });

  it('never repeats an operation that failed for its own reason', async () => {
    let calls = 0;
    await assert.rejects(retryFailedCommit(async () => {
      calls++;
      throw new NotFoundError('FILE_NOT_FOUND', 'no such file');
    }), { code: 'FILE_NOT_FOUND' });
    assert.equal(calls, 1);
  });

  it('reports a synchronous transaction whose commit failed as a failed commit, and runs it again', async () => {
    let calls = 0;
    let commits = 0;
    // lmdb-js's transactionSync: runs the callback, then commits; the first commit fails as LMDB's did.
    const db = {
      transactionSync<T>(fn: () => T): T {
        const result = fn();
        if (++commits === 1) throw Object.assign(new Error('MDB_NOTFOUND: No matching key/data pair found'), { code: -30798 });
        return result;
      },
    };
    const result = await retryFailedCommit(async () => commitSync(db, () => ++calls), [ 1 ]);
    assert.equal(result, 2, 'the callback ran again and its second result is the outcome');
    assert.equal(commits, 2);
  });

  it('passes on an error of a synchronous transaction\'s own callback unchanged, once', async () => {
    let calls = 0;
    const db = { transactionSync: <T>(fn: () => T): T => fn() };
    await assert.rejects(retryFailedCommit(async () => commitSync(db, () => {
      calls++;
      throw new NotFoundError('FILE_NOT_FOUND', 'no such file');
    })), { code: 'FILE_NOT_FOUND' });
    assert.equal(calls, 1);
  });

  it('never runs again a synchronous transaction that failed after its commit (not an LMDB error)', async () => {
    let calls = 0;
    // lmdb-js renewing its read transaction after the commit went through
    const db = {
      transactionSync<T>(fn: () => T): T {
        fn();
        throw new Error('Attempt to reset an invalid read txn');
      },
    };
    await assert.rejects(retryFailedCommit(async () => commitSync(db, () => ++calls), [ 1 ]), /invalid read txn/);
    assert.equal(calls, 1);
  });
});
