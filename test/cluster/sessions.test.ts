import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1 } from '../support/http';
import { OFFSET, TUS, pathOf } from '../support/tus';
import { PrivateRedis, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const patch = (base: string, p: string, offset: number, body: Buffer) => request(`${base}${p}`, {
  method: 'PATCH', body, headers: { ...TUS, 'Content-Type': OFFSET, 'Upload-Offset': offset, 'Content-Length': body.length },
});
const head = (base: string, p: string) => request(`${base}${p}`, { method: 'HEAD', headers: TUS });

describe('cluster mode: upload sessions live in Redis, shared by every node', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  const redis = new PrivateRedis();
  const namespace = uniqueNamespace('sessions');
  const running: Demo[] = [];

  async function node(server: number) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: 'sessions-secret', SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: path.join(dir, `root${server}`),
    });
    running.push(demo);
    return demo;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-sessions-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    await redis.start();
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    await redis.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a tus upload created on A: HEAD through B answers its offset from Redis; bytes sent to B are refused with a 503 naming A (B would write its own disk); A finishes it; A killed -9: HEAD through B still answers; A back: it finishes', async () => {
    const a = await node(1);
    const b = await node(2);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const half = 1024 * 1024 + 5;

    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': data.length } });
    assert.equal(created.status, 201, created.body.toString());
    const p = pathOf(created.headers.location as string);
    const first = await patch(a.base, p, 0, data.subarray(0, half));
    assert.equal(first.status, 204, first.body.toString());

    const seen = await head(b.base, p);
    assert.equal(seen.status, 200);
    assert.equal(seen.headers['upload-offset'], String(half));
    assert.equal(seen.headers['upload-length'], String(data.length));
    assert.equal(seen.headers['tus-resumable'], '1.0.0');

    const elsewhere = await patch(b.base, p, half, data.subarray(half, 2 * half));
    assert.equal(elsewhere.status, 503, elsewhere.body.toString());
    assert.equal(elsewhere.json().code, 'UPLOAD_ON_OTHER_NODE');
    assert.match(elsewhere.json().msg, /node 1\.1/);
    // nothing changed: the offset is still A's
    assert.equal((await head(b.base, p)).headers['upload-offset'], String(half));
    // DELETE through B is refused too (it would free B's space at A's offsets)
    assert.equal((await request(`${b.base}${p}`, { method: 'DELETE', headers: TUS })).status, 503);

    const second = await patch(a.base, p, half, data.subarray(half, 2 * half));
    assert.equal(second.status, 204, second.body.toString());

    // the owner dies: its acknowledged offset is still known to every node
    await a.kill9();
    const dead = await head(b.base, p);
    assert.equal(dead.status, 200);
    assert.equal(dead.headers['upload-offset'], String(2 * half));
    const refused = await patch(b.base, p, 2 * half, data.subarray(2 * half));
    assert.equal(refused.status, 503, refused.body.toString());
    assert.equal(refused.json().code, 'UPLOAD_ON_OTHER_NODE');

    // back: the upload finishes on its node, and every node serves the file
    const a2 = await node(1);
    const last = await patch(a2.base, p, 2 * half, data.subarray(2 * half));
    assert.equal(last.status, 204, last.body.toString());
    assert.equal((await head(b.base, p)).headers['upload-offset'], String(data.length));
    for (const n of [ a2, b ]) {
      const res = await until(`the file from ${n.base}`, async () => {
        const r = await request(`${n.base}/file/download?filehash=${sha1(data)}`);
        return r.status === 200 && r;
      }, 30_000, 200);
      assert.equal(sha1(res.body), sha1(data), `from ${n.base}`);
    }
  });
});
