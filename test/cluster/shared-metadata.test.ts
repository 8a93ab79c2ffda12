import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildDemo, Demo, startDemo } from '../support/cluster-demo';
import { request, sha1, uploadTo } from '../support/http';
import { IORedis, PrivateRedis, uniqueNamespace } from '../support/redis';

/** A form POST (or GET with a query) to a demo node, as the course's clients send them; `token` signs it in. */
function call(base: string, route: string, fields: Record<string, string | number>, token?: string, method = 'POST') {
  const form = new URLSearchParams(Object.entries(fields).map(([ k, v ]) => [ k, String(v) ])).toString();
  const auth: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  if (method === 'GET') return request(`${base}${route}?${form}`, { headers: auth });
  return request(`${base}${route}`, {
    method, body: Buffer.from(form),
    headers: { ...auth, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(form), Accept: 'application/json' },
  });
}

/** A user's files on a node: sha1 → name. */
async function listed(base: string, token?: string): Promise<Record<string, string>> {
  const res = await call(base, '/file/query', { limit: 100 }, token, 'GET');
  assert.equal(res.status, 200, res.body.toString());
  return Object.fromEntries(res.json().map((f: any) => [ f.FileSha1, f.FileName ]));
}

/** The same user signed up on a node (each demo node keeps its own accounts): a token for it there. */
async function signIn(base: string, username: string): Promise<string> {
  await call(base, '/user/signup', { username, password: `${username}-password` });
  const res = await call(base, '/user/signin', { username, password: `${username}-password` });
  assert.equal(res.json().code, 0, res.body.toString());
  return res.json().data.Token;
}

/** `sonofs reindex`, as an operator runs the built command line. */
function reindex(bin: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const env = { ...process.env, NODE_OPTIONS: '', EGG_TYPESCRIPT: '' };
  const child = spawn(process.execPath, [ bin, 'reindex', ...args ], { env, stdio: [ 'ignore', 'pipe', 'pipe' ] });
  let out = '';
  child.stdout.on('data', d => (out += d));
  child.stderr.on('data', d => (out += d));
  return new Promise(resolve => child.once('exit', code => resolve({ code, out })));
}

describe('cluster mode: the sha1 index, links and names live in Redis, shared by every node', function () {
  this.timeout(180_000);
  let dir: string;
  let build: string;
  let bin: string;
  const redis = new PrivateRedis();
  const namespace = uniqueNamespace('meta');
  const running: Demo[] = [];

  async function node(server: number, root: string) {
    const demo = await startDemo(build, dir, {
      SONOFS_REDIS_URL: redis.url, SONOFS_CLUSTER_NAME: namespace, SONOFS_CLUSTER_SECRET: 'shared-metadata-secret', SONOFS_CLUSTER_TTL_MS: '3000',
      SONOFS_GROUP: '1', SONOFS_SERVER: String(server), SONOFS_ROOT: root,
    });
    running.push(demo);
    return demo;
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-shared-meta-'));
    build = path.join(dir, 'build');
    buildDemo(build);
    // the command line of the build, laid out as in the package (bin/ beside cli/)
    fs.mkdirSync(path.join(build, 'bin'));
    bin = path.join(build, 'bin', 'sonofs');
    fs.copyFileSync(path.join(__dirname, '../../bin/sonofs'), bin);
    await redis.start();
  });

  after(async () => {
    for (const d of running) await d.kill9().catch(() => undefined);
    await redis.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists, finds, links (秒传), renames and deletes through any node; after FLUSHALL, `sonofs reindex` of each root finds every file again', async () => {
    const roots = [ path.join(dir, 'root-a'), path.join(dir, 'root-b') ];
    let [ a, b ] = await Promise.all([ node(1, roots[0]), node(2, roots[1]) ]);
    const alice = { a: await signIn(a.base, 'alice'), b: await signIn(b.base, 'alice') };

    // stored through A for alice
    const report = randomBytes(200_000);
    const up = await uploadTo(a.base, report, 'report.pdf', { Authorization: `Bearer ${alice.a}` });
    assert.equal(up.status, 200, up.body.toString());
    const { FileId: reportId, FileSha1: reportHash } = up.json().data;
    assert.equal(reportHash, sha1(report));

    // B lists it for alice, not for another user, and finds it by its hash
    assert.deepEqual(await listed(b.base, alice.b), { [reportHash]: 'report.pdf' });
    assert.deepEqual(await listed(b.base), {}, 'anonymous has no files');
    const meta = await call(b.base, '/file/meta', { filehash: reportHash }, alice.b, 'GET');
    assert.equal(meta.status, 200, meta.body.toString());
    assert.deepEqual([ meta.json().FileName, meta.json().FileId, meta.json().FileSize ], [ 'report.pdf', reportId, report.length ]);
    assert.equal((await call(b.base, '/file/meta', { filehash: reportHash }, undefined, 'GET')).status, 404, 'not anonymous\'s file');

    // 秒传 through B for anonymous: no bytes sent, the content A stored
    const fast = await call(b.base, '/file/fastupload', { filehash: reportHash, filesize: report.length, filename: 'mine.pdf' });
    assert.equal(fast.status, 200, fast.body.toString());
    assert.equal(fast.json().msg, '秒传成功');
    assert.equal(fast.json().data.FileId, reportId);
    assert.deepEqual(await listed(a.base), { [reportHash]: 'mine.pdf' }, 'A lists anonymous\'s link made through B');

    // stored through B, and a file of A's that alice deletes through B
    const notes = randomBytes(3000);
    const upB = await uploadTo(b.base, notes, 'notes.txt', { Authorization: `Bearer ${alice.b}` });
    assert.equal(upB.status, 200, upB.body.toString());
    const notesHash = upB.json().data.FileSha1;
    const doomed = randomBytes(5000);
    const upDoomed = await uploadTo(a.base, doomed, 'doomed.bin', { Authorization: `Bearer ${alice.a}` });
    const { FileId: doomedId, FileSha1: doomedHash } = upDoomed.json().data;
    assert.equal((await request(`${a.base}/file/download?fileid=${doomedId}`)).status, 200);

    // rename and delete through B, seen through A
    const renamed = await call(b.base, '/file/update', { op: 0, filehash: reportHash, filename: 'final report.pdf' }, alice.b);
    assert.equal(renamed.status, 200, renamed.body.toString());
    const deleted = await call(b.base, '/file/delete', { filehash: doomedHash }, alice.b);
    assert.equal(deleted.status, 200, deleted.body.toString());
    const unlinked = await call(b.base, '/file/delete', { filehash: reportHash });
    assert.equal(unlinked.status, 200, unlinked.body.toString());
    const expected = { [reportHash]: 'final report.pdf', [notesHash]: 'notes.txt' };
    assert.deepEqual(await listed(a.base, alice.a), expected);
    assert.deepEqual(await listed(a.base), {}, 'anonymous\'s link, deleted through B, is gone on A');
    assert.equal((await request(`${a.base}/file/download?fileid=${doomedId}`)).status, 404, 'content deleted through B no longer answers on A');
    const got = await request(`${a.base}/file/download?fileid=${reportId}`);
    assert.equal(got.status, 200);
    assert(got.body.equals(report));
    // B reads A's bytes from A
    const viaB = await request(`${b.base}/file/download?fileid=${reportId}`);
    assert.equal(viaB.status, 200, viaB.body.toString());
    assert(viaB.body.equals(report));

    // Redis loses everything: the nodes are stopped, and each root is reindexed (B's first: any order will do)
    await Promise.all([ a.stop(), b.stop() ]);
    const flush = new IORedis(redis.url);
    await flush.flushall();
    flush.disconnect();
    const first = await reindex(bin, [ '--redis', redis.url, '--namespace', namespace, '--root', roots[1] ]);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /node 1\.2, \d+ bundles, \d+ records replayed/);
    const second = await reindex(bin, [ '--redis', redis.url, '--namespace', namespace, '--root', roots[0], '--root', roots[1], '--json' ]);
    assert.equal(second.code, 0, second.out);
    assert.deepEqual(JSON.parse(second.out).map((r: any) => r.node), [ '1.1', '1.2' ], 'run again over both roots');

    [ a, b ] = await Promise.all([ node(1, roots[0]), node(2, roots[1]) ]);
    for (const d of [ a, b ]) {
      assert.deepEqual(await listed(d.base, d === a ? alice.a : alice.b), expected, `alice's files with their names on ${d.base}`);
      assert.deepEqual(await listed(d.base), {}, 'a deleted link stays deleted');
    }
    assert.equal((await request(`${a.base}/file/download?fileid=${doomedId}`)).status, 404, 'deleted content stays deleted');
    const again = await request(`${a.base}/file/download?fileid=${reportId}`);
    assert.equal(again.status, 200);
    assert(again.body.equals(report));
    const fastAgain = await call(a.base, '/file/fastupload', { filehash: notesHash, filesize: notes.length, filename: 'n.txt' });
    assert.equal(fastAgain.json().msg, '秒传成功', 'the sha1 index is back: 秒传 of B\'s content through A');
  });
});
