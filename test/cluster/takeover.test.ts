import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { HEADER_SIZE, RecordKind, bundlePath, decodeFileId, decodeHeader } from '../../lib';
import { clusterOf, form } from '../support/cluster-view';
import { buildDemo, Demo, demoPids, startDemo } from '../support/cluster-demo';
import { request, sha1 } from '../support/http';
import { NODE_AUTH_HEADER, signNodeRequest } from '../../lib/cluster';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { OFFSET, TUS, pathOf } from '../support/tus';
import { until } from '../support/until';
import { readRange } from '../support/files';

const MiB = 1024 * 1024;

const patch = (base: string, p: string, offset: number, body: Buffer) => request(`${base}${p}`, {
  method: 'PATCH', body, headers: { ...TUS, 'Content-Type': OFFSET, 'Upload-Offset': offset, 'Content-Length': body.length },
});

describe('cluster mode: a member of the group takes over an upload whose node died (replication \'all\')', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  const namespace = uniqueNamespace('takeover');
  const running: Demo[] = [];
  const redis = new IORedis(testRedisUrl());
  const rootOf = (server: number) => path.join(dir, `root${server}`);
  // the nodes the first test leaves running (A started again), for the next
  let live: { a: Demo; b: Demo };

  async function node(server: number) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: 'takeover-secret', SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: rootOf(server), SONOFS_SWEEP_INTERVAL_MS: '1000',
    });
    running.push(demo);
    return demo;
  }

  const upCount = async (via: Demo) => (await clusterOf(via.base)).nodes.filter((n: any) => n.state === 'up').length;
  const session = async (id: string) => JSON.parse((await redis.get(`{${namespace}:sessions}:s:${id}`))!);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-takeover-'));
    build = path.join(dir, 'build');
    buildDemo(build);
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    redis.disconnect();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('tus: every acknowledged PATCH is kept by B too; A killed -9, the upload goes on through B from its offset, is stored on B, and A gives its space back when it returns', async () => {
    let a = await node(1);
    const b = await node(2);
    await until('both nodes up', async () => await upCount(a) === 2 && await upCount(b) === 2, 20_000, 200);
    const data = randomBytes(3 * MiB + 17);
    const half = MiB + 5;
    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': data.length, 'Upload-Metadata': 'filename dGFrZW4uYmlu' } });
    assert.equal(created.status, 201, created.body.toString());
    const p = pathOf(created.headers.location as string);
    const id = p.split('/').pop()!;
    assert.equal((await patch(a.base, p, 0, data.subarray(0, half))).status, 204);
    // through B: streamed to A, which keeps a copy on B before it answers
    assert.equal((await patch(b.base, p, half, data.subarray(half, 2 * half))).status, 204);
    const mirror = path.join(rootOf(2), 'replicas', 'sessions', id);
    const marks = fs.readdirSync(mirror).filter(n => n.startsWith('r-')).sort();
    assert.equal(marks.length, 2, marks.join());
    assert(readRange(path.join(mirror, 'data'), 0, 2 * half).equals(data.subarray(0, 2 * half)), 'B keeps the acknowledged bytes');
    const old = (await session(id)).space;
    assert.equal((await session(id)).node, '1.1');

    await a.kill9();
    // while A is still in the map (its entry lasts the TTL), a request on the upload says when to retry
    const early = await patch(b.base, p, 0, data.subarray(0, 10)); // a wrong offset: refused whatever happens, changes nothing
    if (early.status === 503) {
      assert.equal(early.json().code, 'UPLOAD_ON_OTHER_NODE');
      assert.match(early.json().msg, /is unreachable: .*; should it stay away, a member of its group takes the upload over once it has left the cluster map \(within 3000 ms\): retry then/);
      assert.equal(early.headers['retry-after'], '4');
    } else {
      assert.equal(early.status, 409, early.body.toString()); // B had seen A gone already and took it over
    }
    await until('B to see A gone', async () => await upCount(b) === 1, 30_000, 200);
    // B holds copies of A's bundles: A away means its files have a copy fewer, which B's health says
    const health = (await clusterOf(b.base)).health;
    assert.equal(health.status, 'degraded', JSON.stringify(health));
    assert(health.problems.some((x: string) => x.startsWith('member 1.1 of this group is not up')), JSON.stringify(health));
    const head = await request(`${b.base}${p}`, { method: 'HEAD', headers: TUS });
    assert.equal(head.headers['upload-offset'], String(2 * half));
    const last = await patch(b.base, p, 2 * half, data.subarray(2 * half));
    assert.equal(last.status, 204, last.body.toString());
    assert.equal(last.headers['upload-offset'], String(data.length));
    const fileId = String(last.headers['sonofs-file-id']);
    assert.deepEqual([ decodeFileId(fileId).group, decodeFileId(fileId).server ], [ 1, 2 ], 'stored on B');
    const back = await request(`${b.base}/file/download?fileid=${fileId}`);
    assert.equal(back.status, 200);
    assert.equal(sha1(back.body), sha1(data));
    await until('B to log the takeover', () => fs.readdirSync(path.join(dir, `logs-${b.port}`))
      .some(f => fs.readFileSync(path.join(dir, `logs-${b.port}`, f), 'utf8').includes(`took over upload ${id} from node 1.1`)), 10_000, 200);

    // A back: the space it had reserved for the upload is given back (it never became a file)
    const ownBundle = bundlePath(rootOf(1), old.bundle);
    assert.equal(decodeHeader(readRange(ownBundle, old.offset, HEADER_SIZE))?.kind, RecordKind.Pending);
    a = await node(1);
    await until('A to give back the space B took the upload from', () => decodeHeader(readRange(ownBundle, old.offset, HEADER_SIZE))?.kind === RecordKind.Padding, 30_000, 200);
    // and B drops its copy of the finished upload's bytes at its sweep (a minute after their last change): still there now
    assert(fs.existsSync(mirror));
    for (const n of [ a, b ]) {
      const r = await until(`the file from ${n.base}`, async () => {
        const res = await request(`${n.base}/file/download?fileid=${fileId}`);
        return res.status === 200 && res;
      }, 30_000, 200);
      assert.equal(sha1(r.body), sha1(data));
    }
    live = { a, b };
  });

  it('chunked: parts acknowledged by A are kept by B; A killed -9, the last part and the complete go through B', async () => {
    const { a: nodeA, b: nodeB } = live;
    const chunk = 5 * MiB;
    const data = randomBytes(2 * chunk + 777);
    const part = (base: string, uploadid: string, index: number) => {
      const bytes = data.subarray((index - 1) * chunk, index * chunk);
      return request(`${base}/file/mpupload/uppart?uploadid=${uploadid}&index=${index}`, {
        method: 'POST', body: bytes, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.length },
      });
    };
    await until('both nodes up', async () => await upCount(nodeB) === 2, 30_000, 200);
    const init = await request(`${nodeA.base}/file/mpupload/init`, { method: 'POST', ...form({ filehash: sha1(data), filesize: data.length }) });
    assert.equal(init.json().code, 0, init.body.toString());
    const id = init.json().data.UploadID;
    assert.equal((await session(id)).node, '1.1');
    assert.equal((await part(nodeA.base, id, 2)).json().code, 0);
    assert.equal((await part(nodeB.base, id, 1)).json().code, 0);
    await nodeA.kill9();
    await until('B to see A gone', async () => await upCount(nodeB) === 1, 30_000, 200);
    const third = await part(nodeB.base, id, 3);
    assert.equal(third.json().code, 0, third.body.toString());
    const done = await request(`${nodeB.base}/file/mpupload/complete`, { method: 'POST', ...form({ uploadid: id, filehash: sha1(data), filesize: data.length, filename: 'chunks.bin' }) });
    assert.equal(done.json().code, 0, done.body.toString());
    const meta = (await request(`${nodeB.base}/file/meta?filehash=${sha1(data)}`)).json();
    assert.equal(decodeFileId(meta.FileId).server, 2, 'stored on B');
    assert.equal(sha1((await request(`${nodeB.base}/file/download?fileid=${meta.FileId}`)).body), sha1(data));
  });

  it('an owner cut off from the registry while a PATCH is still arriving: B takes the upload over, and the late PATCH is refused (409 UPLOAD_TAKEN_OVER), never recorded', async () => {
    const { b } = live;
    const a = await node(1); // the chunked test killed it
    await until('both nodes up', async () => await upCount(b) === 2 && await upCount(a) === 2, 30_000, 200);
    const data = randomBytes(2 * MiB);
    const half = MiB;
    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': data.length } });
    const p = pathOf(created.headers.location as string);
    const id = p.split('/').pop()!;
    assert.equal((await patch(a.base, p, 0, data.subarray(0, half))).status, 204);
    // a PATCH of the rest to A, of which only a part arrives for now
    const late = http.request(`${a.base}${p}`, {
      method: 'PATCH', headers: { ...TUS, 'Content-Type': OFFSET, 'Upload-Offset': half, 'Content-Length': data.length - half },
    });
    const lateAnswer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      late.on('response', res => {
        const chunks: Buffer[] = [];
        res.on('data', c => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
      });
      late.on('error', reject);
    });
    late.write(data.subarray(half, half + 1000));
    await until('A to hold the late PATCH\'s lock', async () => !!(await redis.get(`{${namespace}:sessions}:l:${id}`)), 10_000, 50);
    // A's agent stops: A leaves the registry while its worker goes on
    const agent = demoPids(a.title).find(pid => execFileSync('ps', [ '-o', 'args=', '-p', String(pid) ]).toString().includes('agent_worker'))!;
    process.kill(agent, 'SIGSTOP');
    try {
      await until('B to see A gone', async () => await upCount(b) === 1, 30_000, 200);
      const offset = Number((await request(`${b.base}${p}`, { method: 'HEAD', headers: TUS })).headers['upload-offset']);
      assert.equal(offset, half, 'the late bytes are not recorded');
      const taken = await patch(b.base, p, half, data.subarray(half, half + 4096));
      assert.equal(taken.status, 204, taken.body.toString());
      assert.equal((await session(id)).node, '1.2');
    } finally {
      process.kill(agent, 'SIGCONT');
    }
    late.end(data.subarray(half + 1000));
    const logsOfA = () => fs.readdirSync(path.join(dir, `logs-${a.port}`)).map(f => fs.readFileSync(path.join(dir, `logs-${a.port}`, f), 'utf8')).join('\n');
    await until('A\'s agent to say it had left the cluster map', () => /beat again after \d+ ms without a heartbeat \(TTL 3000 ms\): it had left the cluster map/.test(logsOfA()), 15_000, 200);
    const refused = await lateAnswer;
    assert.equal(refused.status, 409, refused.body);
    assert.equal(JSON.parse(refused.body).code, 'UPLOAD_TAKEN_OVER');
    // the upload is B's: its offset is what B recorded, and it finishes there with the right bytes
    assert.equal((await request(`${b.base}${p}`, { method: 'HEAD', headers: TUS })).headers['upload-offset'], String(half + 4096));
    const last = await patch(b.base, p, half + 4096, data.subarray(half + 4096));
    assert.equal(last.status, 204, last.body.toString());
    const fileId = String(last.headers['sonofs-file-id']);
    assert.equal(decodeFileId(fileId).server, 2);
    assert.equal(sha1((await request(`${b.base}/file/download?fileid=${fileId}`)).body), sha1(data));
    live = { a, b };
  });

  it('tus with a deferred length (its bytes staged, not in a bundle): A killed -9, B takes it over from its copy and it finishes there', async () => {
    const { a, b } = live;
    const data = randomBytes(MiB + 333);
    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Defer-Length': '1' } });
    assert.equal(created.status, 201, created.body.toString());
    const p = pathOf(created.headers.location as string);
    assert.equal((await patch(a.base, p, 0, data.subarray(0, 4096))).status, 204);
    assert.equal((await patch(b.base, p, 4096, data.subarray(4096, 70_000))).status, 204);
    await a.kill9();
    await until('B to see A gone', async () => await upCount(b) === 1, 30_000, 200);
    const last = await request(`${b.base}${p}`, {
      method: 'PATCH', body: data.subarray(70_000),
      headers: { ...TUS, 'Content-Type': OFFSET, 'Upload-Offset': 70_000, 'Upload-Length': data.length, 'Content-Length': data.length - 70_000 },
    });
    assert.equal(last.status, 204, last.body.toString());
    const fileId = String(last.headers['sonofs-file-id']);
    assert.equal(decodeFileId(fileId).server, 2, 'stored on B');
    assert.equal(sha1((await request(`${b.base}/file/download?fileid=${fileId}`)).body), sha1(data));
  });

  it('the session-bytes route keeps bytes only from a signed member of its group, for a well-formed id and exactly the range named', async () => {
    const { b } = live;
    const put = (q: string, body: Buffer, secret = 'takeover-secret') => {
      const p = `/_sonofs/node/session-bytes?${q}`;
      return request(`${b.base}${p}`, { method: 'PUT', body, headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, 'PUT', p), 'Content-Length': body.length } });
    };
    const id = randomBytes(16).toString('base64url');
    const bytes = randomBytes(1000);
    const ok = await put(`session=${id}&start=0&end=1000&group=1&server=1`, bytes);
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(typeof ok.json().crc, 'number');
    assert.equal((await request(`${b.base}/_sonofs/node/session-bytes?session=${id}&start=0&end=1000&group=1&server=1`, { method: 'PUT', body: bytes })).status, 401);
    assert.equal((await put(`session=${id}&start=0&end=1000&group=1&server=1`, bytes, 'wrong')).status, 401);
    assert.equal((await put(`session=${id}&start=0&end=1000&group=2&server=1`, bytes)).json().code, 'NOT_A_GROUP_PEER');
    assert.equal((await put(`session=${id}&start=0&end=1000&group=1&server=2`, bytes)).json().code, 'NOT_A_GROUP_PEER', 'not from itself');
    assert.equal((await put(`session=..%2F..%2Fx&start=0&end=1000&group=1&server=1`, bytes)).json().code, 'INVALID_SESSION');
    assert.equal((await put(`session=${id}&start=5&end=5&group=1&server=1`, Buffer.alloc(0))).json().code, 'INVALID_RANGE');
    const short = await put(`session=${id}&start=1000&end=3000&group=1&server=1`, bytes);
    assert.equal(short.status, 400, short.body.toString());
    // only the range that arrived whole is marked
    const marks = fs.readdirSync(path.join(rootOf(2), 'replicas', 'sessions', id)).filter(n => n.startsWith('r-'));
    assert.deepEqual(marks.map(m => m.split('-').slice(1, 3).join('-')), [ '0-1000' ]);
  });
});
