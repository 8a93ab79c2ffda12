import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_AUTH_HEADER, signNodeRequest } from '../../lib/cluster';
import { ReplicaReader } from '../../lib/replication';
import { buildDemo, Demo, demoPids, startDemo } from '../support/cluster-demo';
import { SimpleResponse, request, sha1, uploadTo } from '../support/http';
import { OFFSET, TUS } from '../support/tus';
import { testRedisUrl, uniqueNamespace } from '../support/redis';
import { until } from '../support/until';
import { clusterOf, form } from '../support/cluster-view';

const SECRET = 'test-replication-all-secret';
const MiB = 1024 * 1024;

/** The answer of an upload of new content, with the copies it reports in its JSON and its header. */
function copiesOf(res: SimpleResponse): { id: string; copies: number; header: number } {
  assert.equal(res.status, 200, res.body.toString());
  const data = res.json().data;
  return { id: data.FileId, copies: data.Copies, header: Number(res.headers['sonofs-copies']) };
}

describe('cluster mode: replication \'all\' acknowledges an upload once every live member of its group holds it', function () {
  this.timeout(240_000);
  let dir: string;
  let build: string;
  let namespace: string;
  const running: Demo[] = [];

  async function node(server: number, root: string, env: Record<string, string> = {}) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: testRedisUrl(), SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: SECRET, SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: root, ...env,
    });
    running.push(demo);
    return demo;
  }

  const upState = (base: string, n: number) => until(`${n} nodes up in the map of ${base}`,
    async () => (await clusterOf(base)).nodes.filter((m: any) => m.state === 'up').length === n, 20_000, 200);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-repl-all-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    namespace = uniqueNamespace('replall');
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every upload kind answers Copies 2 with the member\'s synced copy already there; a file survives its writer\'s SIGKILL at once; a hung member costs the timeout and one copy', async () => {
    const rootA = path.join(dir, 'a');
    const rootB = path.join(dir, 'b');
    let [ a, b ] = await Promise.all([ node(1, rootA), node(2, rootB) ]);
    await upState(a.base, 2);
    await upState(b.base, 2);
    const copyOnB = new ReplicaReader(rootB, { group: 1, server: 2 }, () => undefined);

    // a single-request upload of each size: the copy is on B when the answer comes, not later
    for (const size of [ 0, 1, 5000, 70_000, 3 * MiB, 9 * MiB ]) {
      const data = randomBytes(size);
      const up = copiesOf(await uploadTo(a.base, data, `all-${size}.bin`));
      assert.deepEqual([ up.copies, up.header ], [ 2, 2 ], `${size} B`);
      const copy = await copyOnB.open(up.id);
      assert(copy, `${size} B: B holds no copy of ${up.id} when A acknowledged it`);
      const chunks: Buffer[] = [];
      for await (const c of await copy.createReadStream(up.id)) chunks.push(c);
      assert.equal(sha1(Buffer.concat(chunks)), sha1(data), `${size} B: the copy differs`);
    }
    // content already stored gains no copy: the answer claims none
    const again = randomBytes(3000);
    copiesOf(await uploadTo(a.base, again, 'first.bin'));
    const dup = await uploadTo(a.base, again, 'second.bin');
    assert.equal(dup.json().data.Copies, undefined, dup.body.toString());
    assert.equal(dup.headers['sonofs-copies'], undefined);

    // tus by POST then PATCH: the PATCH that finishes it says so, and the copy is there
    const tusData = randomBytes(300_000);
    const created = await request(`${a.base}/files`, { method: 'POST', headers: { ...TUS, 'Upload-Length': tusData.length } });
    assert.equal(created.status, 201);
    const done = await request(new URL(String(created.headers.location), a.base).toString(), {
      method: 'PATCH', headers: { ...TUS, 'Upload-Offset': 0, 'Content-Type': OFFSET, 'Content-Length': tusData.length }, body: tusData,
    });
    assert.equal(done.status, 204, done.body.toString());
    assert.equal(done.headers['sonofs-copies'], '2');
    assert(await copyOnB.open(String(done.headers['sonofs-file-id'])), 'no copy of the tus upload on B');

    // a chunked upload: /complete answers Copies
    const chunked = randomBytes(10_000);
    const init = await request(`${a.base}/file/mpupload/init`, { method: 'POST', ...withForm({ filehash: sha1(chunked), filesize: chunked.length }) });
    const uploadId = init.json().data.UploadID;
    const part = await request(`${a.base}/file/mpupload/uppart?uploadid=${encodeURIComponent(uploadId)}&index=1`, {
      method: 'POST', body: chunked, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': chunked.length },
    });
    assert.equal(part.status, 200, part.body.toString());
    const completed = await request(`${a.base}/file/mpupload/complete`, {
      method: 'POST', ...withForm({ uploadid: uploadId, filehash: sha1(chunked), filesize: chunked.length, filename: 'chunked.bin' }),
    });
    assert.equal(completed.json().data.Copies, 2, completed.body.toString());
    assert.equal(completed.headers['sonofs-copies'], '2');

    // the writer dies the moment it answers: the file is read from B at once, no waiting for a catch-up
    const last = randomBytes(2 * MiB);
    const lastUp = copiesOf(await uploadTo(a.base, last, 'last.bin'));
    await a.kill9();
    const fromB = await request(`${b.base}/file/download?fileid=${lastUp.id}`);
    assert.equal(fromB.status, 200, fromB.body.subarray(0, 300).toString());
    assert.equal(sha1(fromB.body), sha1(last));

    // a member that hangs: the upload answers after the copy timeout with one copy, and B copies it once it runs again
    a = await node(1, rootA);
    await upState(a.base, 2);
    const pids = demoPids(b.title);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    let hungUp: { id: string; copies: number; header: number };
    const hung = randomBytes(4000);
    try {
      const t0 = Date.now();
      hungUp = copiesOf(await uploadTo(a.base, hung, 'hung.bin'));
      const took = Date.now() - t0;
      assert.deepEqual([ hungUp.copies, hungUp.header ], [ 1, 1 ]);
      assert(took >= 4000 && took < 15_000, `answered after ${took} ms (copy timeout 5 s)`);
      // Egg's loggers write within a second
      await until('the missing copy logged', () => /1\.2 did not confirm its copy/.test(fs.readFileSync(path.join(dir, `logs-${a.port}`, 'egg-web.log'), 'utf8')), 5000, 200);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    await until('B to copy the upload it missed', () => copyOnB.open(hungUp.id), 30_000, 200);

    // the member's endpoint: signed, for its own group's peers only
    const instanceA = (await clusterOf(a.base)).self.instance;
    const q = (group: number, server: number) => `/_sonofs/node/copy-now?group=${group}&server=${server}&instance=${instanceA}&bundle=0&start=0&end=8&timeout=100`;
    const post = (p: string, secret = SECRET) => request(`${b.base}${p}`, { method: 'POST', headers: { [NODE_AUTH_HEADER]: signNodeRequest(secret, 'POST', p), 'Content-Length': 0 } });
    assert.equal((await request(`${b.base}${q(1, 1)}`, { method: 'POST', headers: { 'Content-Length': 0 } })).status, 401);
    assert.equal((await post(q(1, 1), 'wrong-secret')).status, 401);
    const foreign = await post(q(2, 1));
    assert.equal(foreign.status, 400);
    assert.equal(foreign.json().code, 'NOT_A_GROUP_PEER');
    const self = await post(q(1, 2));
    assert.equal(self.status, 400);
    const bad = await post(q(1, 1).replace('end=8', 'end=zz'));
    assert.equal(bad.status, 400);
    assert.match(bad.json().msg, /end/);
  });

  it('replication \'one\' answers at once with one copy', async () => {
    const ns = uniqueNamespace('replone');
    const env = { SONOFS_REPLICATION: 'one', SONOFS_CLUSTER_NAME: ns };
    const [ a, b ] = await Promise.all([ node(1, path.join(dir, 'one-a'), env), node(2, path.join(dir, 'one-b'), env) ]);
    await upState(a.base, 2);
    const data = randomBytes(5000);
    const up = copiesOf(await uploadTo(a.base, data, 'one.bin'));
    assert.deepEqual([ up.copies, up.header ], [ 1, 1 ]);
    const copyOnB = new ReplicaReader(path.join(dir, 'one-b'), { group: 1, server: 2 }, () => undefined);
    await until('B to copy it in the background', () => copyOnB.open(up.id), 30_000, 200);
    assert.equal((await request(`${b.base}/file/download?fileid=${up.id}`)).status, 200);
  });
});

function withForm(fields: Record<string, string | number>) {
  const f = form(fields);
  return { body: f.body, headers: f.headers };
}
