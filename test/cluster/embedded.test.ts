import assert from 'node:assert/strict';
import { decodeFileId, encodeFileId } from '../../lib';
import { NODE_FILE_PATH } from '../../lib/cluster';
import { startInProcess, TestApp } from '../support/app';

describe('GET /file/cluster on a node without Redis (embedded mode)', () => {
  let running: TestApp;

  before(async () => { running = await startInProcess('embedded-cluster'); });
  after(() => running.close());

  it('answers mode "embedded" with this node alone, its free space and health', async () => {
    const res = await running.app.httpRequest().get('/file/cluster').expect(200);
    const v = res.body;
    assert.equal(v.mode, 'embedded');
    assert.deepEqual(v.self, { group: 3, server: 7, url: null, instance: null });
    assert.equal(v.health.status, 'ok');
    assert.equal(v.nodes.length, 1);
    const [ n ] = v.nodes;
    assert.equal(n.self, true);
    assert(n.free > 0 && n.total >= n.free, `free ${n.free} of ${n.total}`);
    assert.equal(n.version, require('../../package.json').version);
    assert.deepEqual(v.groups, [ { group: 3, servers: [ 7 ], free: n.free } ]);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  it('has no egg-redis and no Redis client at all', () => {
    assert.equal((running.app as any).redis, undefined);
    assert.equal((running.app as any).agent.redis, undefined);
    assert.equal(running.app.config.sonofs.cluster.redis, false);
  });

  it('has no node-to-node endpoint', async () => {
    const res = await running.app.httpRequest().get('/file/cluster/node').expect(404);
    assert.equal(res.body.code, 'NOT_IN_CLUSTER');
    const id = encodeFileId({ group: 3, server: 7, bundle: 0, offset: 0, size: 1, mimeCode: 0, cookie: 1 });
    await running.app.httpRequest().get(`${NODE_FILE_PATH}${id}`).expect(404);
    // nor the replication API
    await running.app.httpRequest().get('/_sonofs/node/bundles').expect(404);
  });

  it('answers another node\'s file id 404, asking no one', async () => {
    const { body } = await running.app.httpRequest().post('/file/upload').set('Accept', 'application/json').attach('file', Buffer.from('x'), 'x.txt').expect(200);
    const loc = decodeFileId(body.data.FileId);
    const res = await running.app.httpRequest().get(`/file/download?fileid=${encodeFileId({ ...loc, group: 1, server: 1 })}`).expect(404);
    assert.equal(res.body.code, 'FILE_NOT_FOUND');
  });
});
