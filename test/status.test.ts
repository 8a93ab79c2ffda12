import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startInProcess, TestApp } from './support/app';
import { request, uploadTo } from './support/http';

/** GET /file/status: the node's health and space (what `sonofs status` shows). */
describe('GET /file/status', () => {
  let running: TestApp;
  const alice = { Authorization: 'Bearer alice-token' };

  before(async () => {
    running = await startInProcess('status', 'apps/cli-app');
  });

  after(() => running.close());

  it('reports identity, limits, disk space, bundles and passing checks as JSON', async () => {
    const up = await uploadTo(running.base, randomBytes(100_000), 'x.bin', alice);
    assert.equal(up.status, 200, up.body.toString());
    const res = await request(`${running.base}/file/status`, { headers: alice });
    assert.equal(res.status, 200, res.body.toString());
    const s = res.json();
    assert.equal(s.status, 'ok');
    assert.deepEqual([ s.group, s.server, s.root ], [ 2, 5, running.root ]);
    assert.deepEqual(s.limits, { maxFileSize: 48 * 1024 * 1024, extentSize: 4 * 1024 * 1024, bundleSize: 64 * 1024 * 1024 });
    assert.equal(s.fsync, true);
    assert.ok(s.disk.total > 0 && s.disk.available > 0 && s.disk.available <= s.disk.free && s.disk.free <= s.disk.total, JSON.stringify(s.disk));
    // the upload's bundle: sparse, so its length is the bundle size and its blocks hold the file
    assert.equal(s.bundles.count, 1);
    assert.equal(s.bundles.length, 64 * 1024 * 1024);
    assert.ok(s.bundles.allocated >= 100_000 && s.bundles.allocated < s.bundles.length, String(s.bundles.allocated));
    assert.deepEqual(s.checks.map((c: { name: string; level: string }) => `${c.name} ${c.level}`), [ 'catalog ok', 'root ok', 'space ok' ]);
    assert.equal(s.version, require('../package.json').version);
    assert.equal(s.worker.pid, process.pid);
  });

  it('answers 401 to a caller the authenticate hook refuses', async () => {
    const res = await request(`${running.base}/file/status`, { headers: { Authorization: 'Bearer wrong' } });
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'UNAUTHORIZED');
  });
});
