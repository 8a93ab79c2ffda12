import assert from 'node:assert/strict';
import { retryFailedCommit } from '../../lib/lmdb-retry';
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
});
