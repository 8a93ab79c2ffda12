import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { decodeFileId } from '../../lib';
import { NODE_AUTH_HEADER, NODE_FILE_PATH, NODE_UPLOAD_PATH, signNodeRequest } from '../../lib/cluster';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { JsonSink, multipart, request, sha1, startJsonSink, uploadTo } from '../support/http';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';

const SECRET = 'test-placement-secret';
const TTL = 3000;
const MiB = 1024 * 1024;
const FUPLOAD_TOKEN = 'placement-fupload-token';

function appWorkerPid(title: string): number {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  const pids = out.split('\n').filter(l => l.includes('app_worker') && l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0]));
  assert.equal(pids.length, 1, `one app worker of ${title}`);
  return pids[0];
}

function rssBytes(pid: number): number {
  return Number(execFileSync('ps', [ '-o', 'rss=', '-p', String(pid) ]).toString().trim()) * 1024;
}

function signed(base: string, p: string, method = 'GET', secret = SECRET, body?: Buffer) {
  return request(`${base}${p}`, { method, body, headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, method, p) } });
}

describe('cluster mode: uploads go to the group placement picks (streamed to another group)', function () {
  this.timeout(300_000);
  let dir: string;
  let a1: Demo; // group 1 server 1: its disk is all reserved, so group 1 has no room
  let a2: Demo; // group 1 server 2
  let b: Demo; // group 2 server 1: takes the uploads
  const running: Demo[] = [];
  let startB: () => Promise<Demo>;
  // fupload completion callbacks
  let notify: JsonSink;

  before(async () => {
    notify = await startJsonSink();
    const notifyUrl = notify.url;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-placement-'));
    const build = path.join(dir, 'build');
    buildDemo(build);
    const namespace = uniqueNamespace('place');
    const node = async (group: number, server: number, env: Record<string, string> = {}) => {
      const d = await startDemo(build, dir, {
        SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: String(TTL),
        SONOFS_CLUSTER_READ_TIMEOUT_MS: '1500', SONOFS_GROUP: String(group), SONOFS_SERVER: String(server),
        SONOFS_ROOT: path.join(dir, `root-${group}-${server}`),
        // the machine's load is the tests', not the nodes': only free space decides here
        SONOFS_PLACEMENT_MAX_LOAD: '1000', SONOFS_PLACEMENT_MIN_FREE: String(64 * MiB),
        SONOFS_FUPLOAD_TOKEN: FUPLOAD_TOKEN, SONOFS_FUPLOAD_NOTIFY_URL: notifyUrl,
        ...env,
      });
      running.push(d);
      return d;
    };
    startB = () => node(2, 1);
    [ a1, a2, b ] = await Promise.all([
      node(1, 1, { SONOFS_CLUSTER_RESERVE_BYTES: String(2 ** 52) }), node(1, 2), startB(),
    ]);
    for (const d of [ a1, a2, b ]) {
      await until(`${d.base} to see three nodes up`, async () => {
        const v = (await request(`${d.base}/file/cluster`)).json();
        return v.nodes?.filter((n: any) => n.state === 'up').length === 3;
      }, 20_000, 100);
    }
    const g1 = (await request(`${a1.base}/file/cluster`)).json().groups.find((g: any) => g.group === 1);
    assert.equal(g1.free, 0, 'node 1.1 advertises its free space less the reserve');
  });

  after(async () => {
    await notify?.close();
    for (const d of running) await d.kill9().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const stored: Array<{ id: string; data: Buffer; name: string }> = [];

  it('an upload through a group 1 node is stored in group 2 and answered as a local upload', async () => {
    for (const [ via, name, size ] of [ [ a1, 'one.txt', 1 ], [ a2, 'small.bin', 100 * 1024 ], [ a1, 'five.bin', 5 * MiB ], [ b, 'local.bin', 3000 ] ] as const) {
      const data = randomBytes(size);
      const res = await uploadTo(via.base, data, name);
      assert.equal(res.status, 200, res.body.toString());
      const d = res.json().data;
      assert.deepEqual([ d.FileSha1, d.FileName, d.FileSize, d.Location ], [ sha1(data), name, size, `/file/download?fileid=${d.FileId}` ]);
      assert.equal(decodeFileId(d.FileId).group, 2, `${name}: the file id names group 2`);
      stored.push({ id: d.FileId, data, name });
    }
  });

  it('the bytes are on group 2\'s disk, and every node serves them byte for byte', async () => {
    for (const f of stored) {
      // the node API answers only what a node holds itself
      const own = await signed(b.base, `${NODE_FILE_PATH}${f.id}`);
      assert.equal(own.status, 200, f.name);
      assert.equal(sha1(own.body), sha1(f.data));
      assert.equal((await signed(a1.base, `${NODE_FILE_PATH}${f.id}`)).status, 404);
      for (const d of [ a1, a2, b ]) {
        const res = await request(`${d.base}/file/download?fileid=${f.id}`);
        assert.equal(res.status, 200, `${f.name} from ${d.base}: ${res.body.subarray(0, 200)}`);
        assert.equal(sha1(res.body), sha1(f.data));
        assert(String(res.headers['content-disposition']).includes(f.name.split('.')[0]), String(res.headers['content-disposition']));
      }
    }
    // the user's catalog is shared: the uploader's node lists the file by its hash
    const meta = await request(`${a1.base}/file/meta?filehash=${sha1(stored[0].data)}`);
    assert.equal(meta.status, 200);
    assert.equal(meta.json().FileId, stored[0].id);
  });

  it('content already stored is a link: the same file id again', async () => {
    const f = stored[2];
    const res = await uploadTo(a2.base, f.data, 'again.bin');
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.json().data.FileId, f.id);
  });

  it('streams a large upload through the group 1 node without holding it', async () => {
    const pid = appWorkerPid(a1.title);
    // warm up the forwarding path so the measure is of the big file alone
    assert.equal((await uploadTo(a1.base, randomBytes(2 * MiB), 'warm.bin')).status, 200);
    const size = 64 * MiB;
    const data = randomBytes(size);
    const before = rssBytes(pid);
    let peak = before;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssBytes(pid)); } catch { /* gone */ } }, 50);
    let res;
    try {
      res = await uploadTo(a1.base, data, 'big.bin');
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssBytes(pid));
    assert.equal(res.status, 200, res.body.toString());
    const id = res.json().data.FileId;
    assert.equal(decodeFileId(id).group, 2);
    const growth = peak - before;
    console.log(`      forwarding worker RSS grew by ${(growth / MiB).toFixed(1)} MiB for a ${size / MiB} MiB upload`);
    assert(growth < size / 2, `the forwarding worker grew by ${growth} bytes for a ${size}-byte upload: it buffered it`);
    const back = await request(`${a2.base}/file/download?fileid=${id}`);
    assert.equal(sha1(back.body), sha1(data));
  });

  it('a tus upload through a group 1 node is created in group 2: whole in its POST, and by POST then PATCH through either node', async () => {
    const tusHeaders = { 'Tus-Resumable': '1.0.0' };
    const whole = randomBytes(10 * 1024);
    const res = await request(`${a1.base}/files/`, {
      method: 'POST', body: whole,
      headers: { ...tusHeaders, 'Upload-Length': whole.length, 'Content-Type': 'application/offset+octet-stream', 'Content-Length': whole.length },
    });
    assert.equal(res.status, 201, res.body.toString());
    const wholeId = String(res.headers['sonofs-file-id']);
    assert.equal(decodeFileId(wholeId).group, 2);
    assert.equal(sha1((await request(`${a2.base}/file/download?fileid=${wholeId}`)).body), sha1(whole));

    // tus-js-client's default: POST, then PATCH to the Location, which names the node the client reached
    const data = randomBytes(2 * MiB + 3);
    const created = await request(`${a1.base}/files`, { method: 'POST', headers: { ...tusHeaders, 'Upload-Length': data.length, 'Upload-Metadata': 'filename cGxhY2VkLmJpbg==' } });
    assert.equal(created.status, 201, created.body.toString());
    const location = String(created.headers.location);
    assert(location.startsWith(`${a1.base}/files/`), `Location ${location} is the URL the client reached`);
    const half = MiB;
    const patch = (base: string, offset: number, body: Buffer) => request(`${base}${new URL(location).pathname}`, {
      method: 'PATCH', body, headers: { ...tusHeaders, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': offset, 'Content-Length': body.length },
    });
    const first = await patch(a1.base, 0, data.subarray(0, half));
    assert.equal(first.status, 204, first.body.toString());
    // its reserved space is on B's disk: nothing of it on group 1's nodes
    const last = await patch(a2.base, half, data.subarray(half));
    assert.equal(last.status, 204, last.body.toString());
    const id = String(last.headers['sonofs-file-id']);
    assert.equal(decodeFileId(id).group, 2, 'the file id names group 2');
    for (const d of [ a1, a2, b ]) assert.equal(sha1((await request(`${d.base}/file/download?fileid=${id}`)).body), sha1(data));
  });

  it('a chunked upload through group 1 nodes is created in group 2, its chunks sent through either node', async () => {
    const data = randomBytes(6 * MiB + 11); // two chunks
    const form = (base: string, p: string, fields: Record<string, string | number>) => request(`${base}/file/${p}`, {
      method: 'POST', body: Buffer.from(new URLSearchParams(Object.entries(fields).map(([ k, v ]) => [ k, String(v) ])).toString()),
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    const init = await form(a2.base, 'mpupload/init', { filehash: sha1(data), filesize: data.length });
    assert.equal(init.status, 200, init.body.toString());
    const uploadId: string = init.json().data.UploadID;
    for (const [ index, via ] of [ [ 1, a1 ], [ 2, a2 ] ] as const) {
      const chunk = data.subarray((index - 1) * 5 * MiB, index * 5 * MiB);
      const part = await request(`${via.base}/file/mpupload/uppart?uploadid=${encodeURIComponent(uploadId)}&index=${index}`, {
        method: 'POST', body: chunk, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': chunk.length },
      });
      assert.equal(part.status, 200, part.body.toString());
    }
    const done = await form(a1.base, 'mpupload/complete', { uploadid: uploadId, filehash: sha1(data), filesize: data.length, filename: 'chunked.bin' });
    assert.equal(done.status, 200, done.body.toString());
    const meta = await request(`${a1.base}/file/meta?filehash=${sha1(data)}`);
    const id = meta.json().FileId;
    assert.equal(decodeFileId(id).group, 2, 'the file id names group 2');
    assert.equal(sha1((await request(`${a1.base}/file/download?fileid=${id}`)).body), sha1(data));
  });

  it('an fupload task made through a group 1 node is created in group 2; its block goes there through the URL it was given', async () => {
    const data = randomBytes(7000);
    const md5 = createHash('md5').update(data).digest('hex');
    const task = await request(`${a1.base}/api/upload/new/task`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ token: FUPLOAD_TOKEN, storePath: '/p', userId: 9, fileName: 'task.bin', fileSize: data.length, fileMd5: md5 })),
    });
    assert.equal(task.json().retCode, '0', task.body.toString());
    const { taskId, uploadUrl } = task.json().data;
    assert(String(uploadUrl).startsWith(`${a1.base}/api/upload/files/block?`), `uploadUrl ${uploadUrl} is on the node the client reached`);
    const block = multipart([
      { name: 'partMd5', data: md5 }, { name: 'startByte', data: '0' }, { name: 'endByte', data: String(data.length - 1) },
      { name: 'file', filename: 'blob', data },
    ]);
    const sent = await request(uploadUrl, { method: 'POST', body: block.body, headers: { 'Content-Type': block.contentType, 'Content-Length': block.body.length } });
    assert.equal(sent.json().retCode, '0', sent.body.toString());
    const call = await until('the fupload callback', () => notify.received.find(c => c.taskId === taskId), 60_000, 200);
    assert.equal(call.retCode, '0', JSON.stringify(call));
    assert.equal(decodeFileId(call.fileId).group, 2, 'the task\'s file is in group 2');
    assert.equal(sha1((await request(`${a1.base}/file/download?fileid=${call.fileId}`)).body), sha1(data));
  });

  it('the node upload route answers 401 without the cluster secret and stores nothing', async () => {
    const p = `${NODE_UPLOAD_PATH}?user=anonymous&name=x.bin`;
    const data = randomBytes(1000);
    for (const res of [
      await request(`${b.base}${p}`, { method: 'POST', body: data }),
      await signed(b.base, p, 'POST', 'another-secret', data),
      // signed for other parameters
      await request(`${b.base}${p}&user=mallory`, { method: 'POST', body: data, headers: { [NODE_AUTH_HEADER]: signNodeRequest(SECRET, 'POST', p) } }),
    ]) {
      assert.equal(res.status, 401, res.body.toString());
      assert.equal(res.json().code, 'UNAUTHORIZED');
    }
    assert.equal((await request(`${b.base}/file/meta?filehash=${sha1(data)}`)).status, 404);
    const ok = await signed(b.base, p, 'POST', SECRET, data);
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(ok.json().fileHash, sha1(data));
  });

  it('a target that dies mid-way: the client gets a 503 JSON and nothing is stored', async () => {
    const data = randomBytes(48 * MiB);
    const { body, contentType } = multipart([ { name: 'file', filename: 'cut.bin', data } ]);
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(`${a1.base}/file/upload`, {
        method: 'POST', agent: false, headers: { Accept: 'application/json', 'Content-Type': contentType, 'Content-Length': body.length },
      }, res => {
        let text = '';
        res.on('data', c => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
        res.on('error', reject);
      });
      req.on('error', () => undefined); // the node may close the connection once it answered
      (async () => {
        for (let at = 0; at < body.length && !req.destroyed; at += 256 * 1024) {
          if (!req.write(body.subarray(at, at + 256 * 1024))) await new Promise(r => req.once('drain', r));
          // a quarter in, the node storing it dies
          if (at === 8 * MiB) await b.kill9();
          else await new Promise(r => setTimeout(r, 5));
        }
        req.end();
      })().catch(reject);
    });
    const res = await answer;
    assert.equal(res.status, 503, res.text);
    assert.equal(JSON.parse(res.text).code, 'PLACEMENT_FAILED');
    assert.equal((await request(`${a1.base}/file/meta?filehash=${sha1(data)}`)).status, 404, 'nothing acknowledged');
    // node 2.1 comes back on its root (a new port) and has no such file either
    b = await startB();
    await until(`${a1.base} to see node 2.1 at its new URL`, async () => {
      const v = (await request(`${a1.base}/file/cluster`)).json();
      return v.nodes?.some((n: any) => n.group === 2 && n.url === b.base && n.state === 'up');
    }, 30_000, 100);
    assert.equal((await request(`${b.base}/file/meta?filehash=${sha1(data)}`)).status, 404);
  });

  it('a dead target: 503 JSON within seconds; once it leaves the map, 507 (no group has room), never a local write', async () => {
    await b.kill9();
    const data = randomBytes(200 * 1024);
    const t0 = Date.now();
    const res = await uploadTo(a1.base, data, 'lost.bin');
    const took = Date.now() - t0;
    assert.equal(res.status, 503, res.body.toString());
    assert.equal(typeof res.json().code, 'string');
    assert(took < 10_000, `took ${took} ms`);
    await until('node 2.1 to leave the map', async () => {
      const v = (await request(`${a1.base}/file/cluster`)).json();
      return !v.nodes.some((n: any) => n.group === 2);
    }, 20_000, 200);
    const full = await uploadTo(a1.base, data, 'lost.bin');
    assert.equal(full.status, 507, full.body.toString());
    assert.equal(full.json().code, 'INSUFFICIENT_STORAGE');
    assert.equal((await request(`${a1.base}/file/meta?filehash=${sha1(data)}`)).status, 404, 'nothing stored');
  });
});
