import assert from 'node:assert/strict';
import type { Liveness, Session, SessionStore } from '../../lib';

/**
 * What every session backend must do: the same sessions, lookup keys, expiry
 * and locks, seen from several handles (processes of a node, or nodes). Each
 * backend's test file calls this with a way to open handles on one fresh store.
 */
export interface SessionStoresUnderTest {
  /** a handle as `node` sees the store, judging holders with `liveness` (default: the backend's own) */
  open(node: string, liveness?: Liveness): Promise<SessionStore>;
  done(): Promise<void>;
}

function session(id: string, over: Partial<Session> = {}): Session {
  const now = Date.now();
  return {
    id, protocol: 'tus', user: 'alice', node: 'n1', length: 100, offset: 0, ranges: [], crc: 0, filename: 'a.bin',
    created: now, expires: now + 60_000, state: 'active', extra: { n: 0 }, ...over,
  };
}

export function sessionStoreConformance(openStores: () => Promise<SessionStoresUnderTest>): void {
  let t: SessionStoresUnderTest;
  let db: SessionStore;
  beforeEach(async () => {
    t = await openStores();
    db = await t.open('n1');
  });
  afterEach(async () => {
    await db.close();
    await t.done();
  });

  it('puts, gets, updates and removes a session', async () => {
    const s = session('s1', { space: { bundle: 3, offset: 4096, length: 200 }, result: undefined });
    await db.put(s);
    assert.deepEqual((await db.get('s1'))?.space, s.space);
    assert.equal((await db.get('s1'))?.filename, 'a.bin');
    const next = await db.update('s1', cur => ({ ...cur, offset: 60, ranges: [ { start: 0, end: 60 } ] }));
    assert.equal(next?.offset, 60);
    assert.deepEqual((await db.get('s1'))?.ranges, [ { start: 0, end: 60 } ]);
    assert.equal((await db.update('s1', () => undefined))?.offset, 60, 'fn answering nothing leaves it');
    assert.equal(await db.update('nope', cur => cur), undefined);
    await db.remove('s1');
    assert.equal(await db.get('s1'), undefined);
  });

  it('keeps lookup keys: set with the session, by prefix in order, dropped only where they still point at it', async () => {
    await db.put(session('s1'), [ 'tus:alice:x', 'open:alice:s1' ]);
    await db.put(session('s2'), [ 'open:alice:s2', 'open:bob:s2' ]);
    await db.setKey('open:alice:s0', 's0');
    assert.equal(await db.getKey('tus:alice:x'), 's1');
    assert.deepEqual(await db.keys('open:alice:', 10), [
      { key: 'open:alice:s0', id: 's0' }, { key: 'open:alice:s1', id: 's1' }, { key: 'open:alice:s2', id: 's2' },
    ]);
    assert.equal(await db.countKeys('open:alice:', 10), 3);
    assert.equal(await db.countKeys('open:alice:', 2), 2, 'counts up to the limit');
    assert.equal(await db.countKeys('open:', 100), 4);
    // the key moved to another session: dropping s1's keys leaves it
    await db.setKey('tus:alice:x', 's2');
    await db.update('s1', cur => cur, { dropKeys: [ 'tus:alice:x', 'open:alice:s1' ] });
    assert.equal(await db.getKey('tus:alice:x'), 's2');
    assert.equal(await db.getKey('open:alice:s1'), undefined);
    await db.setKey('open:alice:s0', undefined);
    assert.deepEqual((await db.keys('open:alice:', 10)).map(k => k.key), [ 'open:alice:s2' ]);
    await db.setKey('open:用户:s3', 's3');
    assert.deepEqual(await db.keys('open:用户:', 10), [ { key: 'open:用户:s3', id: 's3' } ]);
  });

  it('answers expired sessions oldest first, up to a limit, and follows an expiry moved by an update', async () => {
    const now = Date.now();
    await db.put(session('late', { expires: now - 1000 }));
    await db.put(session('early', { expires: now - 5000 }));
    await db.put(session('done', { expires: now - 3000, node: undefined, state: 'done' }));
    await db.put(session('live', { expires: now + 60_000 }));
    assert.deepEqual(await db.expired(now, 10), [ 'early', 'done', 'late' ]);
    assert.deepEqual(await db.expired(now, 1), [ 'early' ]);
    await db.update('early', s => ({ ...s, expires: now + 60_000 }));
    assert.deepEqual(await db.expired(now, 10), [ 'done', 'late' ]);
    await db.remove('late');
    assert.deepEqual(await db.expired(now, 10), [ 'done' ]);
  });

  it('gives one exclusive writer at a time, asks it to let go, renews and releases', async () => {
    await db.put(session('s1'));
    assert.equal(await db.tryLock('s1', 'w1', 'exclusive', 60_000, false), true);
    assert.equal(await db.tryLock('s1', 'w1', 'exclusive', 60_000, false), true, 'its holder again');
    assert.equal(await db.tryLock('s1', 'w2', 'exclusive', 60_000, false), false);
    assert.equal(await db.releaseAsked('s1', 'w1'), false);
    assert.equal(await db.tryLock('s1', 'w2', 'exclusive', 60_000, true), false);
    assert.equal(await db.releaseAsked('s1', 'w1'), true, 'the holder was asked to let go');
    assert.equal(await db.renewLock('s1', 'w1', 60_000), true);
    assert.equal(await db.renewLock('s1', 'w2', 60_000), false, 'not its lock');
    await db.unlock('s1', 'w1');
    assert.equal(await db.tryLock('s1', 'w2', 'exclusive', 60_000, false), true);
    assert.equal(await db.tryLock('s1', 'w3', 'shared', 60_000, false, { start: 0, end: 10 }), false, 'no shared writer beside an exclusive one');
  });

  it('lets shared writers of disjoint ranges in together, and overlapping ones take turns', async () => {
    await db.put(session('s1'));
    assert.equal(await db.tryLock('s1', 'a', 'shared', 60_000, false, { start: 0, end: 50 }), true);
    assert.equal(await db.tryLock('s1', 'b', 'shared', 60_000, false, { start: 50, end: 100 }), true);
    assert.equal(await db.tryLock('s1', 'c', 'shared', 60_000, false, { start: 40, end: 60 }), false);
    assert.equal(await db.tryLock('s1', 'x', 'exclusive', 60_000, false), false);
    await db.unlock('s1', 'a');
    assert.equal(await db.tryLock('s1', 'c', 'shared', 60_000, false, { start: 20, end: 45 }), true);
  });

  it('frees a lock whose holder ran out of time, or whose holder\'s liveness says it is gone', async () => {
    await db.put(session('s1'));
    assert.equal(await db.tryLock('s1', 'short', 'exclusive', 30, false), true);
    await new Promise(r => setTimeout(r, 60));
    assert.equal(await db.tryLock('s1', 'next', 'exclusive', 60_000, false), true, 'past its time');
    // another node's holder: live while its node is in the map
    const map = new Set([ 'n1', 'n2' ]);
    const liveness: Liveness = h => map.has(h.node);
    const a = await t.open('n1', liveness);
    const b = await t.open('n2', liveness);
    try {
      await a.put(session('s2'));
      assert.equal(await b.tryLock('s2', 'on-n2', 'exclusive', 60_000, false), true);
      assert.equal(await a.tryLock('s2', 'on-n1', 'exclusive', 60_000, false), false);
      map.delete('n2');
      assert.equal(await a.tryLock('s2', 'on-n1', 'exclusive', 60_000, false), true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('releases a lock in the same step as an update, and removes it with its session', async () => {
    await db.put(session('s1'));
    assert.equal(await db.tryLock('s1', 'w1', 'exclusive', 60_000, false), true);
    await db.update('s1', s => ({ ...s, offset: 10 }), { unlock: 'w1' });
    assert.equal(await db.tryLock('s1', 'w2', 'exclusive', 60_000, false), true);
    await db.remove('s1');
    assert.equal(await db.tryLock('s1', 'w3', 'exclusive', 60_000, false), true, 'the lock went with the session');
  });

  it('applies concurrent updates from several handles one after another', async () => {
    const handles = [ db, await t.open('n1'), await t.open('n1') ];
    try {
      await db.put(session('s1'));
      await Promise.all(Array.from({ length: 200 }, (_, i) => handles[i % 3].update('s1', s => ({ ...s, extra: { n: s.extra.n + 1 } }))));
      assert.equal((await db.get('s1'))?.extra.n, 200);
    } finally {
      for (const h of handles.slice(1)) await h.close();
    }
  });
}
