import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { decodeFileId, encodeFileId } from '../../lib';
import { NODE_AUTH_HEADER, NODE_FILE_PATH, signNodeRequest } from '../../lib/cluster';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1, uploadTo } from '../support/http';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const SECRET = 'test-remote-reads-secret';
const READ_TIMEOUT = 1500;
const MiB = 1024 * 1024;

/** pids of a demo's app workers. */
function appWorkerPids(title: string): number[] {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  return out.split('\n').filter(l => l.includes('app_worker') && l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0]));
}

interface ReadOutcome {
  status: number;
  headers: http.IncomingHttpHeaders;
  received: number;
  /** the response arrived whole (not cut) */
  complete: boolean;
}

/**
 * GET that reads the first chunk, stops reading while `meanwhile` runs, then
 * reads on until the response ends or is cut.
 */
function readAcross(url: string, meanwhile: () => Promise<void>): Promise<ReadOutcome> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, res => {
      let received = 0;
      let paused = false;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (paused) return;
        paused = true;
        res.pause();
        meanwhile().then(() => res.resume(), reject);
      });
      res.on('error', () => undefined); // a cut shows as complete false at close
      res.once('close', () => resolve({ status: res.statusCode!, headers: res.headers, received, complete: res.complete }));
    });
    req.on('error', reject);
  });
}

function signed(base: string, p: string, method = 'GET', secret = SECRET) {
  return request(`${base}${p}`, { method, headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, method, p) } });
}

describe('cluster mode: any node answers any file id (remote reads)', function () {
  this.timeout(240_000);
  let dir: string;
  let namespace: string;
  let a: Demo; // holds the files (group 1 server 1)
  let b: Demo; // proxies (group 2 server 1)
  let c: Demo; // redirects (group 3 server 1)
  const running: Demo[] = [];
  const files: Array<{ name: string; data: Buffer; id: string; hash: string }> = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-remote-reads-'));
    const build = path.join(dir, 'build');
    buildDemo(build);
    namespace = uniqueNamespace('reads');
    const node = async (group: number, env: Record<string, string> = {}) => {
      const d = await startDemo(build, dir, {
        SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: '3000',
        SONOFS_CLUSTER_READ_TIMEOUT_MS: String(READ_TIMEOUT), SONOFS_GROUP: String(group), SONOFS_SERVER: '1',
        SONOFS_ROOT: path.join(dir, `root-${group}`), ...env,
      });
      running.push(d);
      return d;
    };
    [ a, b, c ] = await Promise.all([ node(1), node(2), node(3, { SONOFS_REMOTE_READS: 'redirect' }) ]);
    for (const d of [ b, c ]) {
      await until(`${d.base} to see node 1.1 up`, async () => {
        const v = (await request(`${d.base}/file/cluster`)).json();
        return v.nodes?.some((n: any) => n.group === 1 && n.url === a.base && n.state === 'up');
      }, 15_000, 100);
    }
    for (const [ name, size ] of [ [ 'one.txt', 1 ], [ 'hundred.bin', 100 * 1024 ], [ 'five.bin', 5 * MiB ], [ 'forty.bin', 40 * MiB ] ] as const) {
      const data = randomBytes(size);
      const res = await uploadTo(a.base, data, name);
      assert.equal(res.status, 200, res.body.toString());
      files.push({ name, data, id: res.json().data.FileId, hash: sha1(data) });
    }
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('streams each file of another node byte for byte, with the headers its own node sends', async () => {
    for (const f of files.slice(0, 3)) {
      const url = `/file/download?fileid=${f.id}`;
      const [ own, via ] = [ await request(`${a.base}${url}`), await request(`${b.base}${url}`) ];
      assert.equal(via.status, 200, via.body.toString());
      assert.equal(via.body.length, f.data.length);
      assert.equal(sha1(via.body), f.hash, f.name);
      assert.equal(via.headers['content-length'], String(f.data.length));
      assert.equal(via.headers.etag, `"${f.hash}"`);
      for (const h of [ 'content-type', 'last-modified', 'accept-ranges' ]) assert.equal(via.headers[h], own.headers[h], h);
      // names are in the shared catalog: B names the file as A does
      assert.equal(via.headers['content-disposition'], own.headers['content-disposition']);
      assert(String(own.headers['content-disposition']).includes(f.name), String(own.headers['content-disposition']));
    }
  });

  it('passes Range, If-Range, HEAD and If-None-Match through', async () => {
    const f = files[2];
    const url = `${b.base}/file/download?fileid=${f.id}`;
    const part = await request(url, { headers: { Range: 'bytes=1000-2047' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-2047/${f.data.length}`);
    assert.equal(part.headers['content-length'], '1048');
    assert.deepEqual(part.body, f.data.subarray(1000, 2048));
    const tail = await request(url, { headers: { Range: 'bytes=-10' } });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.body, f.data.subarray(-10));
    const outside = await request(url, { headers: { Range: `bytes=${f.data.length}-` } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers['content-range'], `bytes */${f.data.length}`);
    // an If-Range of another version: the whole file
    const stale = await request(url, { headers: { Range: 'bytes=0-9', 'If-Range': '"0000000000000000000000000000000000000000"' } });
    assert.equal(stale.status, 200);
    assert.equal(sha1(stale.body), f.hash);

    const head = await request(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(f.data.length));
    assert.equal(head.headers.etag, `"${f.hash}"`);
    assert.equal(head.body.length, 0);
    const headRange = await request(url, { method: 'HEAD', headers: { Range: 'bytes=0-99' } });
    assert.equal(headRange.status, 206);
    assert.equal(headRange.headers['content-length'], '100');

    const cached = await request(url, { headers: { 'If-None-Match': `"${f.hash}"` } });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
    assert.equal(cached.headers.etag, `"${f.hash}"`);
  });

  it('answers 404 when the owner does, and 400 for a malformed id without asking anyone', async () => {
    const loc = decodeFileId(files[1].id);
    const forged = encodeFileId({ ...loc, cookie: (loc.cookie + 1) >>> 0 });
    const res = await request(`${b.base}/file/download?fileid=${forged}`);
    assert.equal(res.status, 404);
    assert.equal(res.json().code, 'FILE_NOT_FOUND');
    const bad = await request(`${b.base}/file/download?fileid=..%2F..%2Fetc%2Fpasswd`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json().code, 'INVALID_FILE_ID');
  });

  it('answers 307 to the owner\'s own URL in redirect mode', async () => {
    const f = files[1];
    const res = await request(`${c.base}/file/download?fileid=${f.id}`);
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, `${a.base}/file/download?fileid=${f.id}`);
    const there = await request(String(res.headers.location));
    assert.equal(sha1(there.body), f.hash);
  });

  it('serves the node-to-node route only to a request signed with the cluster secret, and takes no path from it', async () => {
    const f = files[1];
    const p = `${NODE_FILE_PATH}${f.id}`;
    const unsigned = await request(`${a.base}${p}`);
    assert.equal(unsigned.status, 401);
    assert.equal(unsigned.json().code, 'UNAUTHORIZED');
    assert.equal((await signed(a.base, p, 'GET', 'another-secret')).status, 401);
    // a signature is for one method and one path
    assert.equal((await request(`${a.base}${p}`, { method: 'HEAD', headers: { [NODE_AUTH_HEADER]: signNodeRequest(SECRET, 'GET', p) } })).status, 401);
    assert.equal((await request(`${a.base}${NODE_FILE_PATH}${files[0].id}`, { headers: { [NODE_AUTH_HEADER]: signNodeRequest(SECRET, 'GET', p) } })).status, 401);
    const ok = await signed(a.base, p);
    assert.equal(ok.status, 200);
    assert.equal(sha1(ok.body), f.hash);
    const pathLike = await signed(a.base, `${NODE_FILE_PATH}..%2F..%2Fcluster-instance`);
    assert.equal(pathLike.status, 400);
    assert.equal(pathLike.json().code, 'INVALID_FILE_ID');
    // a node asked for a file it does not hold says so; it never asks on
    const elsewhere = await signed(b.base, p);
    assert.equal(elsewhere.status, 404);
    // not under the public prefix
    assert.equal((await request(`${a.base}/file${p}`)).status, 404);
  });

  it('answers 503 JSON within the read timeout while the owner does not answer, and cuts a download whose owner falls silent', async () => {
    const [ worker ] = appWorkerPids(a.title);
    const big = files[3];
    let t0 = 0;
    try {
      process.kill(worker, 'SIGSTOP');
      t0 = Date.now();
      const res = await request(`${b.base}/file/download?fileid=${files[0].id}`);
      const took = Date.now() - t0;
      assert.equal(res.status, 503, res.body.toString());
      assert.equal(res.json().code, 'NODE_UNAVAILABLE');
      assert(took >= READ_TIMEOUT - 100 && took < 5000, `answered after ${took} ms`);
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    assert.equal(sha1((await request(`${b.base}/file/download?fileid=${files[1].id}`)).body), files[1].hash);

    // the owner stops mid-body (what is in the sockets' buffers still arrives, far less than 40 MiB)
    let cut;
    try {
      cut = await readAcross(`${b.base}/file/download?fileid=${big.id}`, async () => {
        process.kill(worker, 'SIGSTOP');
        t0 = Date.now();
      });
    } finally {
      process.kill(worker, 'SIGCONT');
    }
    const took = Date.now() - t0;
    assert.equal(cut.status, 200);
    assert.equal(cut.headers['content-length'], String(big.data.length));
    assert.equal(cut.complete, false);
    assert(cut.received < big.data.length, `received ${cut.received} bytes`);
    assert(took < 5000, `cut after ${took} ms`);
  });

  it('cuts the client\'s download when the owner dies mid-body, then answers 503 JSON at once', async () => {
    const big = files[3];
    const cut = await readAcross(`${b.base}/file/download?fileid=${big.id}`, () => a.kill9());
    assert.equal(cut.status, 200);
    assert.equal(cut.complete, false);
    assert(cut.received < big.data.length, `received ${cut.received} bytes`);

    for (const f of files.slice(0, 2)) {
      const t0 = Date.now();
      const res = await request(`${b.base}/file/download?fileid=${f.id}`);
      assert.equal(res.status, 503, res.body.toString());
      assert.equal(res.json().code, 'NODE_UNAVAILABLE');
      assert(Date.now() - t0 < 5000, `answered after ${Date.now() - t0} ms`);
    }
    // once the owner has left the map, HEAD too
    await until('1.1 gone from B\'s map', async () => !(await request(`${b.base}/file/cluster`)).json().nodes.some((n: any) => n.group === 1), 10_000, 200);
    const head = await request(`${b.base}/file/download?fileid=${files[0].id}`, { method: 'HEAD' });
    assert.equal(head.status, 503);
  });
});
