import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import mm, { MockApplication } from 'egg-mock';
import { queueNotification, taskExpireHook } from '../lib/fupload';
import { binaryParser, freePort, multipart, request, sha1 } from './support/http';
import { startCluster, TestApp } from './support/app';

const MiB = 1024 * 1024;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

interface Call {
  at: number;
  body: any;
}

/** The business server: records every callback; per task, a plan of answers ('ok', '500', 'reset'). */
class CallbackServer {
  readonly calls: Call[] = [];
  readonly plans = new Map<string, string[]>();
  private server!: http.Server;

  async start(port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', c => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        this.calls.push({ at: Date.now(), body });
        const answer = this.plans.get(body.taskId)?.shift() ?? 'ok';
        if (answer === 'reset') return req.socket.destroy();
        res.statusCode = answer === 'ok' ? 200 : Number(answer);
        res.end(answer === 'ok' ? 'ok' : 'fail');
      });
    });
    await new Promise<void>(r => this.server.listen(port, '127.0.0.1', r));
  }

  of(taskId: string): Call[] {
    return this.calls.filter(c => c.body.taskId === taskId);
  }

  async waitFor(taskId: string, n: number, timeoutMs = 10_000): Promise<Call[]> {
    const until = Date.now() + timeoutMs;
    while (this.of(taskId).length < n) {
      if (Date.now() > until) throw new Error(`expected ${n} callbacks for ${taskId}, got ${this.of(taskId).length}`);
      await new Promise(r => setTimeout(r, 25));
    }
    return this.of(taskId);
  }

  close(): Promise<void> {
    return new Promise(r => this.server.close(() => r()));
  }
}

describe('fupload task API (/api/upload)', () => {
  let app: MockApplication;
  let root: string;
  const notify = new CallbackServer();

  async function startApp() {
    app = mm.app({ baseDir: 'apps/sonofs-app' });
    await app.ready();
  }

  before(async () => {
    process.env.SENDMESSAGE_ONE_PROCESS = 'true';
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-fupload-'));
    process.env.SONOFS_TEST_ROOT = root;
    const port = await freePort();
    await notify.start(port);
    process.env.SONOFS_TEST_NOTIFY_URL = `http://127.0.0.1:${port}/notify`;
    await startApp();
  });

  after(async () => {
    await app.close();
    await notify.close();
    delete process.env.SENDMESSAGE_ONE_PROCESS;
    delete process.env.SONOFS_TEST_NOTIFY_URL;
    fs.rmSync(root, { recursive: true, force: true });
  });

  function newTask(body: Record<string, unknown>) {
    return app.httpRequest().post('/api/upload/new/task').send({ token: 'test-token', storePath: '/biz/files/x', ...body });
  }

  async function createTask(data: Buffer, over: Record<string, unknown> = {}): Promise<string> {
    const res = await newTask({ userId: 7, fileName: 'f.bin', fileSize: data.length, fileMd5: md5(data), feedBackParameter: 'fb', ...over }).expect(200);
    assert.equal(res.body.retCode, '0', JSON.stringify(res.body));
    return res.body.data.taskId;
  }

  function block(taskId: string, start: number, end: number, bytes: Buffer, partMd5 = md5(bytes)) {
    return app.httpRequest().post(`/api/upload/files/block?taskId=${encodeURIComponent(taskId)}`)
      .field('partMd5', partMd5).field('startByte', String(start)).field('endByte', String(end))
      .attach('file', bytes, 'blob');
  }

  const info = (taskId: string) => app.httpRequest().get(`/api/upload/files/blocks/info?taskId=${encodeURIComponent(taskId)}`);
  const setState = (taskId: string, status: string) => app.httpRequest().post('/api/upload/files/state').send({ taskId, status });

  it('creates a task (numbers or numeric strings), resumes it, takes blocks in any order, stores the file and calls back with retries', async () => {
    const data = randomBytes(3 * MiB + 777);
    const feedBackParameter = { order: 42, note: '回调' };
    const created = await newTask({
      userId: '123', fileName: '报告.pdf', fileSize: String(data.length), fileMd5: md5(data).toUpperCase(), feedBackParameter,
    }).expect(200);
    assert.equal(created.body.retCode, '0');
    assert.equal(created.body.status, 'ok');
    const { taskId, uploadUrl, blocksUrl, stateUrl } = created.body.data;
    assert.match(taskId, /^[A-Za-z0-9_-]{22}$/);
    assert.match(uploadUrl, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/api/upload/files/block\\?taskId=${taskId}$`));
    assert.match(blocksUrl, /\/api\/upload\/files\/blocks\/info\?taskId=/);
    assert.match(stateUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/upload\/files\/state$/);

    // the same user, md5 and size (now as numbers) get the same task back
    const again = await newTask({ userId: 123, fileName: '报告.pdf', fileSize: data.length, fileMd5: md5(data) }).expect(200);
    assert.equal(again.body.data.taskId, taskId);

    const first = await info(taskId).expect(200);
    assert.deepEqual(first.body, {
      retCode: '0', status: 'ok', data: { totalSize: data.length, status: 'upload', expectBlocks: [ { startByte: 0, endByte: data.length - 1 } ] },
    });

    const part = (i: number) => {
      const start = i * MiB;
      const end = Math.min(start + MiB, data.length) - 1;
      return { start, end, bytes: data.subarray(start, end + 1) };
    };
    for (const i of [ 2, 0 ]) {
      const { start, end, bytes } = part(i);
      const res = await block(taskId, start, end, bytes).expect(200);
      assert.equal(res.body.retCode, '0');
    }
    // the gaps, inclusive ends, the trailing one too
    const gaps = [ { startByte: MiB, endByte: 2 * MiB - 1 }, { startByte: 3 * MiB, endByte: data.length - 1 } ];
    assert.deepEqual((await info(taskId).expect(200)).body.data.expectBlocks, gaps);

    // a block whose bytes do not match partMd5 is refused and not counted
    const p1 = part(1);
    const badMd5 = await block(taskId, p1.start, p1.end, p1.bytes, md5(Buffer.from('x'))).expect(400);
    assert.deepEqual(badMd5.body, { retCode: '7', status: 'temp part md5 error', data: null });
    // ranges: backwards, past the end, a body that is not the declared range, fields after the file
    assert.equal((await block(taskId, 10, 5, Buffer.alloc(6)).expect(400)).body.retCode, '8');
    assert.equal((await block(taskId, data.length - 1, data.length, Buffer.alloc(2)).expect(400)).body.retCode, '8');
    assert.equal((await block(taskId, p1.start, p1.end, p1.bytes.subarray(1)).expect(400)).body.retCode, '8');
    const late = await app.httpRequest().post(`/api/upload/files/block?taskId=${taskId}`)
      .attach('file', p1.bytes, 'blob').field('partMd5', md5(p1.bytes)).expect(400);
    assert.equal(late.body.retCode, '6');
    assert.deepEqual((await info(taskId).expect(200)).body.data.expectBlocks, gaps);

    // pause: blocks are refused until the task is resumed
    await setState(taskId, 'pause').expect(200, { retCode: '0', status: 'ok', data: { taskId, status: 'pause' } });
    assert.equal((await setState(taskId, 'pause').expect(409)).body.retCode, '5');
    assert.equal((await setState(taskId, 'stop').expect(400)).body.retCode, '6');
    assert.equal((await info(taskId).expect(200)).body.data.status, 'pause');
    const refused = await block(taskId, p1.start, p1.end, p1.bytes).expect(409);
    assert.deepEqual(refused.body, { retCode: '4', status: 'task was pause', data: null });
    await setState(taskId, 'upload').expect(200);

    // the business server fails twice (500, then a reset connection) before it answers 200
    notify.plans.set(taskId, [ '500', 'reset', 'ok' ]);
    const p3 = part(3);
    const third = await block(taskId, p3.start, p3.end, p3.bytes).expect(200);
    assert.deepEqual(third.body.data.expectBlocks, [ { startByte: MiB, endByte: 2 * MiB - 1 } ]);
    const last = await block(taskId, p1.start, p1.end, p1.bytes).expect(200);
    assert.deepEqual(last.body.data, { expectBlocks: [], status: 'done' });

    const calls = await notify.waitFor(taskId, 3);
    const fileHash = sha1(data);
    for (const c of calls) {
      assert.deepEqual(c.body, {
        retCode: '0', status: 'ok', data: feedBackParameter, taskId, fileId: c.body.fileId, fileHash,
        fileName: '报告.pdf', fileSize: data.length, userId: '123', storePath: '/biz/files/x',
      });
    }
    const gap1 = calls[1].at - calls[0].at;
    const gap2 = calls[2].at - calls[1].at;
    assert.ok(gap1 >= 250 && gap2 >= 500 && gap2 > gap1, `back-off gaps ${gap1} ms then ${gap2} ms`);
    await new Promise(r => setTimeout(r, 700));
    assert.equal(notify.of(taskId).length, 3, 'a delivered callback is not sent again');
    const s = await app.sonofsUploads.db.get(taskId);
    assert.equal(s?.extra.notify.state, 'delivered');
    assert.equal(s?.extra.notify.attempts, 3);

    // an ordinary file of user "123" now, named as the task said
    const dl = await app.httpRequest().get(`/file/download?filehash=${fileHash}`).set('x-user', '123')
      .buffer(true).parse(binaryParser).expect(200);
    assert.equal(sha1(dl.body), fileHash);
    const meta = await app.httpRequest().get(`/file/meta?filehash=${fileHash}`).set('x-user', '123').expect(200);
    assert.equal(meta.body.FileName, '报告.pdf');
    assert.equal(meta.body.FileId, calls[2].body.fileId);
    assert.deepEqual((await info(taskId).expect(200)).body.data, { totalSize: data.length, status: 'done', expectBlocks: [] });
  });

  it('calls back -2 and drops the task when the whole file does not match fileMd5', async () => {
    const data = randomBytes(200_000);
    const taskId = await createTask(data, { fileMd5: md5(Buffer.from('something else')), userId: 8 });
    const res = await block(taskId, 0, data.length - 1, data).expect(200);
    assert.equal(res.body.data.status, 'cancel');
    const [ call ] = await notify.waitFor(taskId, 1);
    assert.deepEqual(call.body, {
      retCode: '-2', status: 'md5 error', data: 'fb', taskId, fileId: '', fileHash: '', fileName: 'f.bin', fileSize: data.length,
      userId: 8, storePath: '/biz/files/x',
    });
    assert.equal((await info(taskId).expect(410)).body.retCode, '2');
    await app.httpRequest().get(`/file/meta?filehash=${sha1(data)}`).set('x-user', '8').expect(404);
  });

  it('cancels: blocks and state calls are refused, the same task parameters start a new task', async () => {
    const data = randomBytes(100_000);
    const taskId = await createTask(data, { userId: 9 });
    await block(taskId, 0, 49_999, data.subarray(0, 50_000)).expect(200);
    await setState(taskId, 'cancel').expect(200);
    const refused = await block(taskId, 50_000, 99_999, data.subarray(50_000)).expect(410);
    assert.equal(refused.body.retCode, '4');
    assert.equal((await info(taskId).expect(410)).body.retCode, '2');
    assert.equal((await setState(taskId, 'upload').expect(410)).body.retCode, '2');
    const fresh = await createTask(data, { userId: 9 });
    assert.notEqual(fresh, taskId);
    assert.equal((await info(fresh).expect(200)).body.data.expectBlocks.length, 1);
  });

  it('checks the token and the parameters, and stores an empty file at once', async () => {
    const data = randomBytes(10);
    const body = { userId: 1, fileName: 'a', fileSize: 10, fileMd5: md5(data) };
    assert.deepEqual((await newTask({ ...body, token: 'wrong' }).expect(403)).body, { retCode: '1', status: 'not authorized', data: null });
    assert.equal((await newTask({ ...body, token: '__proto__' }).expect(403)).body.retCode, '1');
    for (const bad of [ { fileSize: 'ten' }, { fileSize: -1 }, { userId: '12a' }, { fileMd5: 'abc' }, { fileName: '' }, { storePath: 5 } ]) {
      const res = await newTask({ ...body, ...bad }).expect(400);
      assert.equal(res.body.retCode, '6', JSON.stringify(bad));
    }
    assert.equal((await newTask({ ...body, fileSize: 1024 * MiB }).expect(413)).body.retCode, '6');
    assert.equal((await block('no-such-task', 0, 0, Buffer.alloc(1)).expect(404)).body.retCode, '2');
    assert.equal((await info('no-such-task').expect(404)).body.retCode, '2');
    assert.equal((await info('').expect(400)).body.retCode, '6');
    // a chunked upload's id is not a task
    const chunked = await app.httpRequest().post('/file/mpupload/init').type('form').send({ filehash: sha1(data), filesize: '10' }).expect(200);
    assert.equal((await info(chunked.body.data.UploadID).expect(404)).body.retCode, '2');

    const empty = Buffer.alloc(0);
    const taskId = await createTask(empty, { userId: 10, fileName: 'empty.txt' });
    assert.deepEqual((await info(taskId).expect(200)).body.data, { totalSize: 0, status: 'done', expectBlocks: [] });
    const [ call ] = await notify.waitFor(taskId, 1);
    assert.equal(call.body.retCode, '0');
    assert.equal(call.body.fileHash, sha1(empty));
  });

  it('resends a callback not yet delivered after the app restarts', async () => {
    const data = randomBytes(50_000);
    const taskId = await createTask(data, { userId: 11 });
    notify.plans.set(taskId, [ '503', '503', '503', '503', '503' ]);
    await block(taskId, 0, data.length - 1, data).expect(200);
    await notify.waitFor(taskId, 1);
    await app.close();
    const down = notify.of(taskId).length;
    assert.ok(down < 5);
    notify.plans.set(taskId, []);
    const restarted = Date.now();
    await startApp();
    const calls = await notify.waitFor(taskId, down + 1);
    assert.ok(calls[down].at >= restarted);
    assert.equal(calls[down].body.retCode, '0');
    assert.equal(calls[down].body.fileHash, sha1(data));
    const until = Date.now() + 5000;
    while ((await app.sonofsUploads.db.get(taskId))?.extra.notify.state !== 'delivered') {
      assert.ok(Date.now() < until, 'the delivery is recorded');
      await new Promise(r => setTimeout(r, 50));
    }
    assert.equal((await app.sonofsUploads.db.get(taskId))?.extra.notify.attempts, down + 1);
  });

  it('stores and calls back a task whose worker died between its last block and storing it', async () => {
    const data = randomBytes(30_000);
    const taskId = await createTask(data, { userId: 13 });
    // as the block route does, minus the finishing: the bytes are in and the callback is queued
    await app.sonofsUploads.write(taskId, { at: 0, length: data.length, source: Readable.from([ data ]) });
    await queueNotification(app.sonofsUploads.db, taskId, { retCode: '0', status: 'ok' });
    assert.equal((await info(taskId).expect(200)).body.data.status, 'upload');
    // the agent notices (finishRetryAfter: 1 s in the fixture) and hands it to a worker
    const [ call ] = await notify.waitFor(taskId, 1, 15_000);
    assert.equal(call.body.retCode, '0');
    assert.equal(call.body.fileHash, sha1(data));
    assert.equal((await info(taskId).expect(200)).body.data.status, 'done');
  });

  it('gives up on a task whose file cannot be stored: one worker per retry, finishAttempts attempts, then -1 "store error" and the bytes freed', async () => {
    mm(app.config.sonofs.fupload, 'finishAttempts', 3);
    let attempts = 0;
    mm(app.sonofsUploads, 'complete', async () => {
      attempts++;
      throw new Error('disk on fire');
    });
    // the agent asks one worker (sendRandom), never all of them
    const agentMessenger = (app as any).agent.messenger;
    const random = agentMessenger.sendRandom;
    const asked: Array<{ action: string; id: string }> = [];
    const broadcast: Array<{ action: string; id: string }> = [];
    let viaRandom = false;
    mm(agentMessenger, 'sendRandom', (action: string, data: unknown) => {
      asked.push({ action, id: (data as { id: string }).id });
      viaRandom = true; // egg-mock's single-process sendRandom is a sendToApp to its one app
      try {
        return random.call(agentMessenger, action, data);
      } finally {
        viaRandom = false;
      }
    });
    const toApp = agentMessenger.sendToApp;
    mm(agentMessenger, 'sendToApp', (action: string, data: unknown) => {
      if (!viaRandom) broadcast.push({ action, id: (data as { id: string })?.id });
      return toApp.call(agentMessenger, action, data);
    });
    try {
      const data = randomBytes(40_000);
      const taskId = await createTask(data, { userId: 14, feedBackParameter: 'doomed' });
      // the block is stored even though the file is not (attempt 1)
      const res = await block(taskId, 0, data.length - 1, data).expect(200);
      assert.deepEqual(res.body.data, { expectBlocks: [], status: 'upload' });
      // attempts 2 and 3 come from the agent, finishRetryAfter (1 s) apart; the third failure ends the task
      const [ call ] = await notify.waitFor(taskId, 1, 15_000);
      assert.deepEqual(call.body, {
        retCode: '-1', status: 'store error', data: 'doomed', taskId, fileId: '', fileHash: '', fileName: 'f.bin', fileSize: data.length,
        userId: 14, storePath: '/biz/files/x',
      });
      assert.equal(attempts, 3);
      const finishes = (sent: Array<{ action: string; id: string }>) => sent.filter(a => a.action === 'sonofs:fupload:finish' && a.id === taskId).length;
      // (2, or more if an attempt outlasted finishRetryAfter: the request after it waits for its lock and counts nothing)
      assert.ok(finishes(asked) >= 2, `${finishes(asked)} requests to store the task`);
      assert.equal(finishes(broadcast), 0);
      const s = (await app.sonofsUploads.db.get(taskId))!;
      assert.equal(s.state, 'cancelled', 'engine.cancel gave the bytes back');
      assert.equal(s.extra.finishAttempts, 3);
      assert.equal(s.extra.finishError, 'disk on fire');
      assert.equal((await info(taskId).expect(410)).body.retCode, '2');
      assert.equal((await block(taskId, 0, data.length - 1, data).expect(410)).body.retCode, '4');
      // nobody tries again, and the failure is called back once
      await new Promise(r => setTimeout(r, 2500));
      assert.equal(attempts, 3);
      assert.equal(notify.of(taskId).length, 1);
    } finally {
      mm.restore();
    }
  });

  it('a task whose last attempt never finished (its worker died) fails on the next request to store it', async () => {
    mm(app.config.sonofs.fupload, 'finishAttempts', 2);
    const data = randomBytes(10_000);
    const taskId = await createTask(data, { userId: 15 });
    try {
      // as if two workers had died while storing it: the bytes are in, the callback queued, the attempts counted
      await app.sonofsUploads.write(taskId, { at: 0, length: data.length, source: Readable.from([ data ]) });
      await queueNotification(app.sonofsUploads.db, taskId, { retCode: '0', status: 'ok' });
      await app.sonofsUploads.update(taskId, undefined, cur => ({ ...cur, extra: { ...cur.extra, finishAttempts: 2 } }));
      const [ call ] = await notify.waitFor(taskId, 1, 15_000);
      assert.equal(call.body.retCode, '-1');
      assert.equal(call.body.status, 'store error');
      assert.equal((await app.sonofsUploads.db.get(taskId))!.state, 'cancelled');
      await app.httpRequest().get(`/file/meta?filehash=${sha1(data)}`).set('x-user', '15').expect(404);
    } finally {
      mm.restore();
    }
  });

  it('calls back -1 when an idle task expires (the expiry sweep keeps a tombstone)', async () => {
    const data = randomBytes(20_000);
    const taskId = await createTask(data, { userId: 12, feedBackParameter: 'expiring' });
    await block(taskId, 0, 9_999, data.subarray(0, 10_000)).expect(200);
    const uploads = app.sonofsUploads;
    // the agent's sweep, run as if a day had passed
    await uploads.sweep(Date.now() + 48 * 3600_000, taskExpireHook(uploads.db, 72 * 3600_000));
    const [ call ] = await notify.waitFor(taskId, 1);
    assert.deepEqual(call.body, {
      retCode: '-1', status: 'time out', data: 'expiring', taskId, fileId: '', fileHash: '', fileName: 'f.bin', fileSize: data.length,
      userId: 12, storePath: '/biz/files/x',
    });
    assert.equal((await block(taskId, 10_000, 19_999, data.subarray(10_000)).expect(410)).body.retCode, '4');
  });
});

describe('fupload and chunked upload across processes (mm.cluster: agent + 2 workers)', () => {
  let base: string;
  const notify = new CallbackServer();

  let running: TestApp;

  before(async () => {
    const notifyPort = await freePort();
    await notify.start(notifyPort);
    process.env.SONOFS_TEST_NOTIFY_URL = `http://127.0.0.1:${notifyPort}/notify`;
    running = await startCluster('fupload-cluster');
    ({ base } = running);
  });

  after(async () => {
    await running.close();
    await notify.close();
    delete process.env.SONOFS_TEST_NOTIFY_URL;
  });

  const json = (url: string, body: unknown) => request(url, {
    method: 'POST', body: Buffer.from(JSON.stringify(body)), headers: { 'Content-Type': 'application/json' },
  });

  it('takes a task\'s blocks on both workers and the agent calls back once', async () => {
    const data = randomBytes(4 * MiB + 99);
    const created = await json(`${base}/api/upload/new/task`, {
      token: 'test-token', userId: 77, fileName: 'c.bin', fileSize: data.length, fileMd5: md5(data), feedBackParameter: 'cl',
    });
    assert.equal(created.status, 200, created.body.toString());
    const { taskId, uploadUrl } = created.json().data;
    const blocks = [ 0, 1, 2, 3, 4 ].map(i => data.subarray(i * MiB, (i + 1) * MiB));
    const answers = await Promise.all(blocks.map((bytes, i) => {
      const m = multipart([
        { name: 'partMd5', data: md5(bytes) }, { name: 'startByte', data: String(i * MiB) },
        { name: 'endByte', data: String(i * MiB + bytes.length - 1) }, { name: 'file', filename: 'blob', data: bytes },
      ]);
      return request(uploadUrl, { method: 'POST', body: m.body, headers: { 'Content-Type': m.contentType } });
    }));
    for (const a of answers) assert.equal(a.status, 200, a.body.toString());
    assert.equal(new Set(answers.map(a => a.headers['x-served-by'])).size, 2, 'blocks landed on both workers');
    const [ call ] = await notify.waitFor(taskId, 1, 20_000);
    assert.equal(call.body.retCode, '0');
    assert.equal(call.body.fileHash, sha1(data));
    await new Promise(r => setTimeout(r, 1000));
    assert.equal(notify.of(taskId).length, 1);
    const dl = await request(`${base}/file/download?filehash=${sha1(data)}`, { headers: { 'x-user': '77' } });
    assert.equal(sha1(dl.body), sha1(data));
  });

  it('takes a chunked upload\'s chunks on both workers', async () => {
    const data = randomBytes(11 * MiB);
    const form = (route: string, fields: Record<string, string | number>) => request(`${base}/file/${route}`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'x-user': 'cl' },
      body: Buffer.from(new URLSearchParams(Object.entries(fields).map(([ k, v ]) => [ k, String(v) ])).toString()),
    });
    const init = (await form('mpupload/init', { filehash: sha1(data), filesize: data.length })).json().data;
    const answers = await Promise.all([ 1, 2, 3 ].map(i => request(`${base}/file/mpupload/uppart?uploadid=${init.UploadID}&index=${i}`, {
      method: 'POST', headers: { 'x-user': 'cl', 'Content-Type': 'multipart/form-data' }, body: data.subarray((i - 1) * 5 * MiB, i * 5 * MiB),
    })));
    for (const a of answers) assert.equal(a.status, 200, a.body.toString());
    const done = await form('mpupload/complete', { uploadid: init.UploadID, filehash: sha1(data), filesize: data.length, filename: 'c.bin' });
    assert.equal(done.status, 200, done.body.toString());
    assert.equal(done.json().data.FileSha1, sha1(data));
  });
});
