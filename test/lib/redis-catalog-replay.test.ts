import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ReplayRecord, UploadCommit, encodeFileId } from '../../lib';
import { RedisCatalog } from '../../lib/catalog/redis-catalog';
import { testRedis, TestRedis } from '../support/redis';

const sha1Of = (s: string) => createHash('sha1').update(s).digest('hex');
const none = () => undefined;

function fileIdOn(server: number, content: string, offset: number): string {
  return encodeFileId({ group: 1, server, bundle: 0, offset, size: content.length, mimeCode: 1, cookie: randomBytes(4).readUInt32BE(0) });
}

function upload(user: string, content: string, name: string, server = 1): UploadCommit {
  return { user, name, blob: { sha1: sha1Of(content), fileId: fileIdOn(server, content, 4096), size: content.length, mime: 'application/octet-stream', time: Date.now() } };
}

/** A shared catalog as two nodes hold it: node 1.1 and node 1.2. */
async function twoNodes(redis: TestRedis) {
  return {
    a: new RedisCatalog(redis.client, { namespace: redis.namespace, node: '1.1' }),
    b: new RedisCatalog(redis.client, { namespace: redis.namespace, node: '1.2' }),
    /** a seq taken by an operation that wrote its record and died before its commit */
    takeSeq: async (): Promise<number> => Number(await redis.client.incr(`{${redis.namespace}}:s`)),
  };
}

describe('lib: the Redis catalog replays a record only where it is newer than what the key holds', () => {
  let redis: TestRedis;
  beforeEach(async () => { redis = await testRedis('standalone'); });
  afterEach(async () => { await redis.done(); });

  it('a record a node replays at start does not undo a rename or a delete made later through another node', async () => {
    const { a, b, takeSeq } = await twoNodes(redis);
    const renamed = upload('alice', 'renamed content', 'first.txt');
    await a.commitUpload(renamed, none, none);
    const deleted = upload('alice', 'deleted content', 'doomed.txt');
    await a.commitUpload(deleted, none, none);
    // node 1.1's worker wrote a rename record and was killed before its commit; then the user renamed through node 1.2
    const stale = await takeSeq();
    await b.rename('alice', renamed.blob.sha1, 'through-b.txt', none);
    const staleLink = await takeSeq();
    await b.unlink('alice', deleted.blob.sha1, none);
    // and a new content whose upload on 1.1 died uncommitted, stored and deleted through 1.2 since
    const gone = upload('alice', 'stored twice, deleted', 'gone.txt');
    const staleBlob = await takeSeq();
    await b.commitUpload({ ...gone, blob: { ...gone.blob, fileId: fileIdOn(2, 'stored twice, deleted', 8192) } }, none, none);
    await b.unlink('alice', gone.blob.sha1, none);

    const records: ReplayRecord[] = [
      { kind: 'link', seq: stale, time: Date.now(), sha1: renamed.blob.sha1, user: 'alice', name: 'stale.txt', at: renamed.blob.time },
      { kind: 'link', seq: staleLink, time: Date.now(), sha1: deleted.blob.sha1, user: 'alice', name: 'revived.txt', at: Date.now() },
      { kind: 'blob', seq: staleBlob, time: Date.now(), sha1: gone.blob.sha1, user: 'alice', name: 'gone.txt', fileId: gone.blob.fileId, size: gone.blob.size, mime: gone.blob.mime },
    ];
    assert.equal(await a.replay(records), 3, 'all three are past node 1.1\'s mark');
    assert.equal((await b.getUserFile('alice', renamed.blob.sha1))?.name, 'through-b.txt');
    assert.equal(await b.getUserFile('alice', deleted.blob.sha1), undefined);
    assert.equal(await b.getBlob(deleted.blob.sha1), undefined);
    assert.equal(await b.getBlob(gone.blob.sha1), undefined);
    assert.deepEqual((await b.listUserFiles('alice', 10)).map(f => f.name), [ 'through-b.txt' ]);
    // without the per-key seq the same replay would have brought them back: a newer record does change them
    const newer = await takeSeq();
    await a.replay([ { ...records[0], seq: newer, name: 'newest.txt' } ]);
    assert.equal((await b.getUserFile('alice', renamed.blob.sha1))?.name, 'newest.txt');
  });

  it('rebuilds the same catalog from the nodes\' bundles in either order, and a second run changes nothing', async () => {
    const t0 = Date.now() - 60_000;
    const x = { sha1: sha1Of('x'), fileId: fileIdOn(1, 'x', 4096), size: 1, mime: 'text/plain' };
    const y = { sha1: sha1Of('y'), fileId: fileIdOn(1, 'y', 8192), size: 1, mime: 'text/plain' };
    // node 1.1 stored x and y for alice; through node 1.2 bob linked x (秒传), alice renamed x and deleted y
    const onA: ReplayRecord[] = [
      { kind: 'blob', seq: 1, time: t0, user: 'alice', name: 'x.txt', ...x },
      { kind: 'blob', seq: 2, time: t0 + 1, user: 'alice', name: 'y.txt', ...y },
    ];
    const onB: ReplayRecord[] = [
      { kind: 'link', seq: 3, time: t0 + 2, sha1: x.sha1, user: 'bob', name: 'bobs-x.txt', at: t0 + 2 },
      { kind: 'link', seq: 4, time: t0 + 3, sha1: x.sha1, user: 'alice', name: 'x-renamed.txt', at: t0 },
      { kind: 'unlink', seq: 5, time: t0 + 4, sha1: y.sha1, user: 'alice' },
    ];
    const rebuild = async (c: RedisCatalog, records: ReplayRecord[]) => {
      await c.replay([], { rebuild: { verifyData: false, last: false } });
      assert.deepEqual(await c.unfinishedRebuild(), { verifyData: false });
      await c.replay(records, { rebuild: { verifyData: false, last: true } });
      assert.equal(await c.unfinishedRebuild(), undefined);
    };
    const seen: unknown[] = [];
    for (const order of [ 'a first', 'b first' ]) {
      const r = await testRedis('standalone');
      try {
        const { a, b } = await twoNodes(r);
        const steps: Array<[RedisCatalog, ReplayRecord[]]> = order === 'a first' ? [ [ a, onA ], [ b, onB ] ] : [ [ b, onB ], [ a, onA ] ];
        for (const [ c, recs ] of steps) await rebuild(c, recs);
        const state = async () => ({
          alice: (await a.listUserFiles('alice', 10)).map(f => [ f.name, f.fileId, f.at ]),
          bob: (await a.listUserFiles('bob', 10)).map(f => [ f.name, f.fileId, f.at ]),
          x: await a.getBlob(x.sha1),
          y: await a.getBlob(y.sha1),
        });
        const once = await state();
        assert.deepEqual(once, {
          alice: [ [ 'x-renamed.txt', x.fileId, t0 ] ],
          bob: [ [ 'bobs-x.txt', x.fileId, t0 + 2 ] ],
          x: { ...x, time: t0, refs: 2 },
          y: undefined,
        }, order);
        for (const [ c, recs ] of steps) await rebuild(c, recs);
        assert.deepEqual(await state(), once, `${order}: run again`);
        // live operations afterwards take seqs past every record
        let seq = 0;
        await a.commitUpload(upload('carol', 'after', 'after.txt'), s => { seq = s; }, none);
        assert(seq > 5, `seq ${seq}`);
        seen.push(once);
      } finally {
        await r.done();
      }
    }
    assert.deepEqual(seen[0], seen[1]);
  });
});
