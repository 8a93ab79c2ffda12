import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDemo, Demo, demoPids, startDemo } from '../support/cluster-demo';
import { request, sha1 } from '../support/http';
import { OFFSET, TUS, pathOf } from '../support/tus';
import { PrivateRedis, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';
import { clusterOf } from '../support/cluster-view';
import { Upload } from 'tus-js-client';

const patch = (base: string, p: string, offset: number, body: Buffer) => request(`${base}${p}`, {
  method: 'PATCH', body, headers: { ...TUS, 'Content-Type': OFFSET, 'Upload-Offset': offset, 'Content-Length': body.length },
});
const head = (base: string, p: string) => request(`${base}${p}`, { method: 'HEAD', headers: TUS });

describe('cluster mode: upload sessions live in Redis, shared by every node (replication \'one\')', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  const redis = new PrivateRedis();
  const namespace = uniqueNamespace('sessions');
  const running: Demo[] = [];
  // the nodes the first test leaves running, for the next
  let live: { a: Demo; b: Demo };

  async function node(server: number) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: 'sessions-secret', SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: path.join(dir, `root${server}`),
      // no member keeps a copy of an unfinished upload's bytes: its node alone can go on with it (takeover.test.ts has 'all')
      SONOFS_REPLICATION: 'one',
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

  it('a tus upload created on A: HEAD through B answers from Redis, PATCH through B is streamed to A; A killed -9: HEAD through B still answers, PATCH is a 503 naming A; A back: the upload finishes through B and every node serves it', async () => {
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

    // bytes through B land on A (where the upload's space is), with A's tus answer
    const second = await patch(b.base, p, half, data.subarray(half, 2 * half));
    assert.equal(second.status, 204, second.body.toString());
    assert.equal(second.headers['upload-offset'], String(2 * half));
    assert.equal(second.headers['tus-resumable'], '1.0.0');
    assert.equal((await head(a.base, p)).headers['upload-offset'], String(2 * half));
    // a wrong offset through B gets A's 409, and changes nothing
    const wrong = await patch(b.base, p, 0, data.subarray(0, 10));
    assert.equal(wrong.status, 409, wrong.body.toString());
    assert.equal(wrong.json().code, 'OFFSET_MISMATCH');

    // the owner dies: its acknowledged offset is still known to every node, its bytes are not
    await a.kill9();
    await until('B to see A gone', async () => (await request(`${b.base}/file/cluster`)).json().nodes.length === 1, 30_000, 200);
    const dead = await head(b.base, p);
    assert.equal(dead.status, 200);
    assert.equal(dead.headers['upload-offset'], String(2 * half));
    const refused = await patch(b.base, p, 2 * half, data.subarray(2 * half));
    assert.equal(refused.status, 503, refused.body.toString());
    assert.equal(refused.json().code, 'UPLOAD_ON_OTHER_NODE');
    assert.match(refused.json().msg, /node holding this upload's bytes \(1\.1\) is down; retry when it is back/);
    assert.equal((await head(b.base, p)).headers['upload-offset'], String(2 * half));

    // back: the upload finishes through B, and every node serves the file
    const a2 = await node(1);
    const last = await until('the last PATCH through B once it sees A again', async () => {
      const r = await patch(b.base, p, 2 * half, data.subarray(2 * half));
      return r.status !== 503 && r;
    }, 30_000, 500);
    assert.equal(last.status, 204, last.body.toString());
    assert.equal(last.headers['upload-offset'], String(data.length));
    assert.equal((await head(b.base, p)).headers['upload-offset'], String(data.length));
    live = { a: a2, b };
    for (const n of [ a2, b ]) {
      const res = await until(`the file from ${n.base}`, async () => {
        const r = await request(`${n.base}/file/download?filehash=${sha1(data)}`);
        return r.status === 200 && r;
      }, 30_000, 200);
      assert.equal(sha1(res.body), sha1(data), `from ${n.base}`);
    }
  });

  it('a chunked upload started on A takes its parts through A and B (B streams them to A), completes through B, and both serve the file', async () => {
    const { a, b } = live;
    const chunk = 5 * 1024 * 1024;
    const data = randomBytes(2 * chunk + 4321);
    const form = (base: string, route: string, fields: Record<string, string | number>) => {
      const body = Buffer.from(new URLSearchParams(Object.entries(fields).map(([ k, v ]) => [ k, String(v) ])).toString());
      return request(`${base}/file/${route}`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length } });
    };
    const part = (base: string, uploadid: string, index: number) => {
      const bytes = data.subarray((index - 1) * chunk, index * chunk);
      return request(`${base}/file/mpupload/uppart?uploadid=${uploadid}&index=${index}`, {
        method: 'POST', body: bytes, headers: { 'Content-Type': 'multipart/form-data', 'Content-Length': bytes.length },
      });
    };
    const init = await form(a.base, 'mpupload/init', { filehash: sha1(data), filesize: data.length });
    assert.equal(init.json().code, 0, init.body.toString());
    const id = init.json().data.UploadID;
    for (const [ n, index ] of [ [ b, 2 ], [ a, 1 ], [ b, 3 ] ] as Array<[Demo, number]>) {
      const res = await part(n.base, id, index);
      assert.equal(res.status, 200, `part ${index} through ${n.base}: ${res.body.toString()}`);
      assert.equal(res.json().code, 0, res.body.toString());
    }
    // the status needs no bytes: B answers it from Redis
    const status = await form(b.base, 'mpupload/status', { uploadid: id });
    assert.deepEqual(status.json().data.ChunkExists, [ 1, 2, 3 ]);
    const done = await form(b.base, 'mpupload/complete', { uploadid: id, filehash: sha1(data), filesize: data.length, filename: 'parts.bin' });
    assert.equal(done.status, 200, done.body.toString());
    assert.equal(done.json().code, 0, done.body.toString());
    for (const n of [ a, b ]) {
      const res = await until(`the file from ${n.base}`, async () => {
        const r = await request(`${n.base}/file/download?filehash=${sha1(data)}`);
        return r.status === 200 && r;
      }, 30_000, 200);
      assert.equal(sha1(res.body), sha1(data), `from ${n.base}`);
    }
  });

  it('tus-js-client resumes through B an upload it started on A (HEAD, then PATCHes streamed to A), and both serve the file', async () => {
    const { a, b } = live;
    const data = randomBytes(2 * 1024 * 1024 + 99);
    const sent: string[] = [];
    const run = (opts: Record<string, unknown>) => new Promise<Upload>((resolve, reject) => {
      const u: Upload = new Upload(data as any, {
        chunkSize: 512 * 1024, retryDelays: null, metadata: { filename: 'resumed.bin' },
        onBeforeRequest: req => { sent.push(`${req.getMethod()} ${req.getURL()}`); },
        onSuccess: () => resolve(u), onError: reject, ...opts,
      });
      u.start();
    });
    // a first client on A stops after its first chunk
    const first = await new Promise<Upload>((resolve, reject) => {
      const u: Upload = new Upload(data as any, {
        endpoint: `${a.base}/files/`, chunkSize: 512 * 1024, retryDelays: null, metadata: { filename: 'resumed.bin' },
        onChunkComplete: () => { u.abort().then(() => resolve(u), reject); },
        onError: reject,
      });
      u.start();
    });
    const p = pathOf(first.url!);
    assert.equal((await head(b.base, p)).headers['upload-offset'], String(512 * 1024));
    // another client, given the upload's URL on B, finds the offset there and sends the rest there
    await run({ uploadUrl: `${b.base}${p}` });
    assert.ok(sent.every(r => r.includes(b.base)), sent.join('\n'));
    assert.equal(sent.filter(r => r.startsWith('PATCH')).length, 4, sent.join('\n'));
    for (const n of [ a, b ]) {
      const res = await until(`the file from ${n.base}`, async () => {
        const r = await request(`${n.base}/file/download?filehash=${sha1(data)}`);
        return r.status === 200 && r;
      }, 30_000, 200);
      assert.equal(sha1(res.body), sha1(data), `from ${n.base}`);
    }
  });

  it('a PATCH through B to an owner that hangs (SIGSTOP) answers 503 once the connection is silent, and goes through once it runs again', async () => {
    const { a, b } = live;
    const data = randomBytes(200_000);
    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': data.length } });
    assert.equal(created.status, 201, created.body.toString());
    const p = pathOf(created.headers.location as string);
    const pids = demoPids(a.title);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const hung = await patch(b.base, p, 0, data.subarray(0, 1000));
      const took = Date.now() - t0;
      assert.equal(hung.status, 503, hung.body.toString());
      assert.equal(hung.json().code, 'UPLOAD_ON_OTHER_NODE');
      assert(took < 45_000, `answered after ${took} ms`);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    // HEAD is answered from Redis; the PATCH needs A back in B's map (it left it while stopped)
    await until('A up again in B\'s map', async () => (await clusterOf(b.base)).nodes.filter((n: any) => n.state === 'up').length === 2, 30_000, 200);
    const offset = Number((await until('A answering again', async () => {
      const r = await head(b.base, p);
      return r.status === 200 && r;
    }, 30_000, 200)).headers['upload-offset']);
    const rest = await patch(b.base, p, offset, data.subarray(offset));
    assert.equal(rest.status, 204, rest.body.toString());
    assert(rest.headers['sonofs-file-id'], JSON.stringify(rest.headers));
  });
});
