import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { decodeFileId, HEADER_SIZE } from '../lib';
import { request, sha1, uploadTo } from './support/http';
import { startCluster, TestApp } from './support/app';

describe('plugin across processes (mm.cluster: agent + 2 workers)', () => {
  let base: string;
  let running: TestApp;

  before(async () => {
    running = await startCluster('cluster');
    ({ base } = running);
  });

  after(() => running.close());

  it('both workers write with space from the agent, never the same bytes, and every file reads back', async () => {
    const blobs = Array.from({ length: 60 }, (_, i) => randomBytes(5_000 + i * 1_013));
    const responses = await Promise.all(blobs.map((b, i) => uploadTo(base, b, `${i}.bin`)));
    const pids = new Set(responses.map(r => r.headers['x-served-by']));
    assert.equal(pids.size, 2, `expected uploads on both workers, got ${[ ...pids ]}`);
    const ids = responses.map(r => {
      assert.equal(r.status, 200, r.body.toString());
      return r.json().data.FileId as string;
    });
    // records of different workers never overlap
    const spans = ids.map(id => decodeFileId(id)).map(l => ({ b: l.bundle, from: l.offset, to: l.offset + HEADER_SIZE + l.size }))
      .sort((x, y) => x.b - y.b || x.from - y.from);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].b === spans[i - 1].b) assert(spans[i].from >= spans[i - 1].to, `overlap at ${JSON.stringify(spans[i])}`);
    }
    for (let i = 0; i < ids.length; i++) {
      const res = await request(`${base}/file/download?fileid=${ids[i]}`);
      assert.equal(res.status, 200);
      assert.equal(sha1(res.body), sha1(blobs[i]));
    }
  });

  it('stores identical content once when two users upload it to different workers at once', async () => {
    const data = randomBytes(30_000);
    const results = await Promise.all([ 'u1', 'u2', 'u3', 'u4' ].map(user => uploadTo(base, data, `${user}.bin`, { 'x-user': user })));
    const ids = new Set(results.map(r => r.json().data.FileId));
    assert.equal(ids.size, 1, 'every user must get the one stored copy');
    for (const user of [ 'u1', 'u2', 'u3', 'u4' ]) {
      const meta = await request(`${base}/file/meta?filehash=${sha1(data)}`, { headers: { 'x-user': user } });
      assert.equal(meta.json().FileName, `${user}.bin`);
    }
  });
});
