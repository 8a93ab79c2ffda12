import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReplicaReader } from '../../lib/replication';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { JsonSink, SimpleResponse, multipart, request, sha1, startJsonSink, uploadTo } from '../support/http';
import { IORedis, FAIL_FAST, PrivateRedis, uniqueNamespace } from '../support/redis';
import { OFFSET, TUS } from '../support/tus';
import { until } from '../support/until';
import { clusterOf, form } from '../support/cluster-view';

const SECRET = 'test-outage-secret';
const FUPLOAD_TOKEN = 'outage-fupload-token';
/** what the issue asks of every answer while Redis is away (generous: the machine is shared) */
const BOUND_MS = 5000;

interface Stored {
  id: string;
  hash: string;
  data: Buffer;
  /** the node it was uploaded through */
  via: string;
}

/** A POST of form fields. */
function post(base: string, route: string, fields: Record<string, string | number>, query = '') {
  const f = form(fields);
  return request(`${base}${route}${query}`, { method: 'POST', body: f.body, headers: f.headers });
}

/** Times a call; asserts it answered within BOUND_MS. */
async function timed(what: string, call: () => Promise<SimpleResponse>): Promise<SimpleResponse> {
  const t0 = Date.now();
  const res = await call();
  const ms = Date.now() - t0;
  assert(ms < BOUND_MS, `${what} took ${ms} ms`);
  return res;
}

/** A 503 JSON answer naming the shared catalog, within BOUND_MS; `code` is where the route's error shape keeps it. */
async function unavailable(what: string, call: () => Promise<SimpleResponse>, code: (body: any) => unknown = b => b.code) {
  const res = await timed(what, call);
  assert.equal(res.status, 503, `${what}: ${res.status} ${res.body.subarray(0, 300).toString()}`);
  assert.match(String(res.headers['content-type']), /json/, what);
  const body = res.json();
  assert.equal(code(body), 'METADATA_UNAVAILABLE', `${what}: ${JSON.stringify(body)}`);
  assert.match(JSON.stringify(body), /shared catalog \(Redis\) is not reachable/, what);
  return body;
}

describe('cluster mode: the nodes while their shared Redis is stopped and started again', function () {
  this.timeout(300_000);
  let dir: string;
  let build: string;
  const redis = new PrivateRedis({ persist: true });
  const namespace = uniqueNamespace('outage');
  const running: Demo[] = [];
  /** fupload completion callbacks received */
  let notify: JsonSink;

  async function node(group: number, server: number) {
    const root = path.join(dir, `root-${group}-${server}`);
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: String(group), SONOFS_SERVER: String(server), SONOFS_ROOT: root,
      // one attempt at storing a task: only an outage that does not count lets it through
      SONOFS_FUPLOAD_TOKEN: FUPLOAD_TOKEN, SONOFS_FUPLOAD_NOTIFY_URL: notify.url, SONOFS_FUPLOAD_FINISH_RETRY_MS: '1000', SONOFS_FUPLOAD_FINISH_ATTEMPTS: '1',
    });
    running.push(demo);
    return Object.assign(demo, { root, group, server });
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-outage-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    await redis.start();
    notify = await startJsonSink();
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    await redis.remove();
    await notify?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('downloads by id from every node (own, replica copy, remote), answers 503 METADATA_UNAVAILABLE within 5 s elsewhere, stores nothing, and recovers when Redis is back', async () => {
    const [ a, b, c ] = await Promise.all([ node(1, 1), node(1, 2), node(2, 1) ]);
    const nodes = [ a, b, c ];
    for (const d of nodes) {
      await until(`${d.base} to list all three nodes`, async () => (await clusterOf(d.base)).nodes.filter((n: any) => n.state === 'up').length === 3, 20_000, 200);
    }

    // through each node: a small file (answered from one read) and a larger one (streamed)
    const files: Stored[] = [];
    for (const d of nodes) {
      for (const size of [ 3000, 200_000 ]) {
        const data = randomBytes(size);
        const res = await uploadTo(d.base, data, `${d.group}-${d.server}-${size}.bin`);
        assert.equal(res.status, 200, res.body.toString());
        files.push({ id: res.json().data.FileId, hash: res.json().data.FileSha1, data, via: d.base });
      }
    }
    // A and B (one group) hold good copies of each other's files before Redis goes
    for (const [ holder, peer ] of [ [ a, b ], [ b, a ] ]) {
      const reader = new ReplicaReader(holder.root, { group: 1, server: holder.server }, () => undefined);
      for (const f of files.filter(x => x.via === peer.base)) {
        await until(`${holder.base} to hold a copy of ${f.id}`, () => reader.open(f.id), 30_000, 200);
      }
    }
    // a chunked upload whose chunk comes during the outage, and a tus upload whose last bytes do
    const chunkedData = randomBytes(4000);
    const init = await post(a.base, '/file/mpupload/init', { filehash: sha1(chunkedData), filesize: chunkedData.length });
    assert.equal(init.status, 200, init.body.toString());
    const uploadId = init.json().data.UploadID;
    const tusData = randomBytes(10_000);
    const created = await request(`${b.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': tusData.length } });
    assert.equal(created.status, 201, created.body.toString());
    const tusUrl = new URL(String(created.headers.location), b.base).toString();
    const patch = (from: number, to: number) => request(tusUrl, {
      method: 'PATCH', headers: { ...TUS, 'Upload-Offset': from, 'Content-Type': OFFSET, 'Content-Length': to - from }, body: tusData.subarray(from, to),
    });
    assert.equal((await patch(0, 4000)).status, 204);
    const listedBefore = (await request(`${a.base}/file/query?limit=100`)).json().map((f: any) => f.FileSha1).sort();
    assert.equal(listedBefore.length, files.length);

    await redis.stop();
    await until('every node to see the registry unreachable', async () => {
      for (const d of nodes) if ((await clusterOf(d.base)).registry.status !== 'unreachable') return false;
      return true;
    }, 15_000, 200);

    // 1. every file downloads by id from every node, byte for byte, under its id name
    for (const d of nodes) {
      for (const f of files) {
        const what = `${f.id} (${f.data.length} B, stored via ${f.via}) from ${d.base}`;
        const res = await timed(what, () => request(`${d.base}/file/download?fileid=${f.id}`));
        assert.equal(res.status, 200, `${what}: ${res.status} ${res.body.subarray(0, 300).toString()}`);
        assert.equal(sha1(res.body), f.hash, `${what} differs`);
        assert.match(String(res.headers['content-disposition']), new RegExp(f.id), what);
        const head = await timed(`HEAD ${what}`, () => request(`${d.base}/file/download?fileid=${f.id}`, { method: 'HEAD' }));
        assert.equal(head.status, 200, `HEAD ${what}`);
        assert.equal(Number(head.headers['content-length']), f.data.length, `HEAD ${what}`);
        assert.equal(head.headers.etag, `"${f.hash}"`, `HEAD ${what}`);
      }
    }
    // a range of a remote file, and an id nobody has, still answer as usual
    const big = files.find(f => f.via === c.base && f.data.length > 100_000)!;
    const range = await timed('a range', () => request(`${a.base}/file/download?fileid=${big.id}`, { headers: { Range: 'bytes=100-199' } }));
    assert.equal(range.status, 206);
    assert.deepEqual(range.body, big.data.subarray(100, 200));

    // 2. whatever needs the catalog answers 503 METADATA_UNAVAILABLE, soon, on every node
    const fresh = randomBytes(5000);
    const known = files[0];
    for (const d of nodes) {
      await unavailable(`upload via ${d.base}`, () => uploadTo(d.base, fresh, 'during.bin'));
      await unavailable(`meta via ${d.base}`, () => request(`${d.base}/file/meta?filehash=${known.hash}`));
      await unavailable(`download by hash via ${d.base}`, () => request(`${d.base}/file/download?filehash=${known.hash}`));
      await unavailable(`query via ${d.base}`, () => request(`${d.base}/file/query?limit=10`));
      await unavailable(`rename via ${d.base}`, () => post(d.base, '/file/update', { op: 0, filehash: known.hash, filename: 'renamed.bin' }));
      await unavailable(`delete via ${d.base}`, () => post(d.base, '/file/delete', { filehash: known.hash }));
      await unavailable(`秒传 via ${d.base}`, () => post(d.base, '/file/fastupload', { filehash: known.hash, filesize: known.data.length, filename: 'fast.bin' }), x => x.error);
      await unavailable(`chunked init via ${d.base}`, () => post(d.base, '/file/mpupload/init', { filehash: sha1(fresh), filesize: fresh.length }), x => x.error);
    }
    // upload sessions are in Redis too: a chunk, a tus HEAD or PATCH, a tus POST and an fupload task answer the same
    const sendPart = () => request(`${a.base}/file/mpupload/uppart?uploadid=${encodeURIComponent(uploadId)}&index=1`, {
      method: 'POST', body: chunkedData, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': chunkedData.length },
    });
    await unavailable('a chunk', sendPart, x => x.error);
    const complete = () => post(a.base, '/file/mpupload/complete', { uploadid: uploadId, filehash: sha1(chunkedData), filesize: chunkedData.length, filename: 'chunked.bin' });
    await unavailable('chunked complete', complete, x => x.error);
    await unavailable('tus PATCH finishing', () => patch(4000, tusData.length));
    const tusHead = await timed('tus HEAD', () => request(tusUrl, { method: 'HEAD', headers: TUS }));
    assert.equal(tusHead.status, 503, JSON.stringify(tusHead.headers));
    await unavailable('tus POST with the whole upload', () => request(`${c.base}/files`, {
      method: 'POST', body: fresh, headers: { ...TUS, 'Upload-Length': fresh.length, 'Content-Type': OFFSET, 'Content-Length': fresh.length },
    }));
    const taskData = randomBytes(6000);
    const md5 = createHash('md5').update(taskData).digest('hex');
    const newTask = () => request(`${a.base}/api/upload/new/task`, {
      method: 'POST', body: Buffer.from(JSON.stringify({ token: FUPLOAD_TOKEN, storePath: '/biz/x', userId: 7, fileName: 'task.bin', fileSize: taskData.length, fileMd5: md5, feedBackParameter: 'fb' })),
      headers: { 'Content-Type': 'application/json' },
    });
    const refusedTask = await timed('fupload new task', newTask);
    assert.equal(refusedTask.status, 503, refusedTask.body.toString());
    assert.match(refusedTask.body.toString(), /shared catalog \(Redis\) is not reachable/);
    assert.equal(notify.received.length, 0, `callbacks while Redis is away: ${JSON.stringify(notify.received)}`);

    // 3. Redis back (its data kept): the same processes serve everything again
    const agentPids = nodes.map(d => d.child.pid);
    await redis.start();
    await until('every node registered again', async () => {
      for (const d of nodes) {
        const v = await clusterOf(d.base);
        if (v.registry.status !== 'ok' || v.nodes.filter((n: any) => n.state === 'up').length !== 3) return false;
      }
      return true;
    }, 30_000, 200);
    // nothing was stored while Redis was away
    const listedAfter = await until('the catalog answering again', async () => {
      const res = await request(`${b.base}/file/query?limit=100`);
      return res.status === 200 && res.json().map((f: any) => f.FileSha1).sort();
    }, 20_000, 200);
    assert.deepEqual(listedAfter, listedBefore);
    const check = new IORedis(redis.url, FAIL_FAST);
    check.on('error', () => undefined);
    try {
      await new Promise(r => check.once('ready', r));
      assert.equal(await check.hget(`{${namespace}}:l:anonymous`, Buffer.from(sha1(fresh), 'hex')), null, 'the refused upload is in the catalog');
    } finally {
      check.disconnect();
    }
    assert.equal((await request(`${c.base}/file/meta?filehash=${sha1(fresh)}`)).status, 404);
    // uploads, 秒传, lookups, the refused chunked and tus uploads finish, on every node
    for (const d of nodes) {
      const res = await uploadTo(d.base, fresh, `after-${d.server}.bin`);
      assert.equal(res.status, 200, `${d.base}: ${res.body.toString()}`);
      assert.equal(res.json().data.FileSha1, sha1(fresh));
      const fast = await post(d.base, '/file/fastupload', { filehash: known.hash, filesize: known.data.length, filename: `fast-${d.server}.bin` });
      assert.equal(fast.json().msg, '秒传成功', fast.body.toString());
      const meta = await request(`${d.base}/file/meta?filehash=${known.hash}`);
      assert.equal(meta.status, 200);
      const byHash = await request(`${d.base}/file/download?filehash=${known.hash}`);
      assert.equal(sha1(byHash.body), known.hash);
    }
    const part = await sendPart();
    assert.equal(part.status, 200, part.body.toString());
    const completed = await complete();
    assert.equal(completed.status, 200, completed.body.toString());
    const finished = await patch(4000, tusData.length);
    assert.equal(finished.status, 204, finished.body.toString());
    assert(finished.headers['sonofs-file-id'], `tus PATCH after the outage: ${JSON.stringify(finished.headers)}`);
    const tusFile = await request(`${c.base}/file/download?fileid=${finished.headers['sonofs-file-id']}`);
    assert.equal(tusFile.status, 200, `tus file: ${tusFile.body.subarray(0, 300).toString()}`);
    assert.equal(tusFile.body.length, tusData.length);
    assert.equal(sha1(tusFile.body), sha1(tusData));
    // an fupload task is taken, stored and its server told so
    const task = await newTask();
    assert.equal(task.json().retCode, '0', task.body.toString());
    const taskId = task.json().data.taskId;
    const blockBody = multipart([
      { name: 'partMd5', data: md5 }, { name: 'startByte', data: '0' }, { name: 'endByte', data: String(taskData.length - 1) },
      { name: 'file', filename: 'blob', data: taskData },
    ]);
    const blockRes = await request(`${a.base}/api/upload/files/block?taskId=${encodeURIComponent(taskId)}`, {
      method: 'POST', body: blockBody.body, headers: { 'Content-Type': blockBody.contentType, 'Content-Length': blockBody.body.length },
    });
    assert.equal(blockRes.json().retCode, '0', blockRes.body.toString());
    const call = await until('the fupload callback', () => notify.received.find(c => c.taskId === taskId), 60_000, 200);
    assert.equal(call.retCode, '0', JSON.stringify(call));
    const taskFile = await request(`${c.base}/file/download?fileid=${call.fileId}`);
    assert.equal(taskFile.status, 200, `${JSON.stringify(call)}: ${taskFile.body.subarray(0, 300).toString()}`);
    assert.equal(sha1(taskFile.body), sha1(taskData));
    // the same processes all along
    assert.deepEqual(nodes.map(d => d.child.pid), agentPids);
    for (const d of nodes) assert.equal(d.child.exitCode, null);
  });
});
