import assert from 'node:assert/strict';
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, multipart, request, sha1, uploadTo } from './support/http';

const repo = path.join(__dirname, '..');

/** pids of this demo's processes of one kind ('agent_worker' | 'app_worker'), from ps. */
function pidsOf(kind: string, title: string): number[] {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  return out.split('\n').filter(l => l.includes(kind) && l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0]));
}

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 200));
  }
}

/**
 * An upload whose body trickles in: it stays in flight on one worker until
 * `finish()` is called or the connection dies.
 */
function slowUpload(base: string, data: Buffer) {
  const { body, contentType } = multipart([ { name: 'file', filename: 'slow.bin', data } ]);
  const req = http.request(`${base}/file/upload`, {
    method: 'POST', agent: false,
    headers: { Accept: 'application/json', 'Content-Type': contentType, 'Content-Length': body.length, Connection: 'close' },
  });
  const result = new Promise<{ status: number; body: any } | { error: string }>(resolve => {
    req.on('response', res => {
      const chunks: Buffer[] = [];
      res.on('data', c => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
      res.on('error', err => resolve({ error: err.message }));
    });
    req.on('error', err => resolve({ error: err.message }));
  });
  const half = Math.floor(body.length / 2);
  req.write(body.subarray(0, half));
  return { result, finish: () => req.end(body.subarray(half)) };
}

describe('deploy: the demo under egg-scripts (production, agent + 2 workers)', function () {
  this.timeout(240_000);
  let dir: string;
  let port: number;
  let base: string;
  let title: string;
  let child: ChildProcess;
  let output = '';
  /** every upload the server acknowledged: fileId → sha1 */
  const acked = new Map<string, string>();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-deploy-'));
    execFileSync(process.execPath, [ path.join(repo, 'scripts/build.js'), path.join(dir, 'build') ], { stdio: 'ignore' });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    title = `sonofs-deploy-test-${port}`;
    child = spawn(process.execPath, [ path.join(repo, 'scripts/start.js') ], {
      env: {
        ...process.env, PORT: String(port), EGG_WORKERS: '2', EGG_TITLE: title, SONOFS_ROOT: path.join(dir, 'data'),
        SONOFS_BUILD_DIR: path.join(dir, 'build'), SONOFS_EXTENT_MIB: '4', HOME: dir,
        // egg-bin's ts-node hooks must not leak into the production processes
        NODE_OPTIONS: '', EGG_TYPESCRIPT: '',
      },
      stdio: [ 'ignore', 'pipe', 'pipe' ],
    });
    child.stdout!.on('data', d => (output += d));
    child.stderr!.on('data', d => (output += d));
    await until('the demo to start', () => output.includes('egg started on'), 60_000).catch(err => {
      throw new Error(`${err.message}\n${output.slice(-3000)}`);
    });
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await until('the demo to stop', () => child.exitCode !== null || child.signalCode !== null, 60_000).catch(() => child.kill('SIGKILL'));
    }
    // SIGTERM stopped every process the demo started (a child may take a moment
    // longer than the master to finish exiting)
    if (title) {
      const left = () => [ ...pidsOf('app_worker', title), ...pidsOf('agent_worker', title) ];
      await until('every demo process to exit', () => left().length === 0, 10_000).catch(() => undefined);
      assert.deepEqual(left(), []);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function uploadAcked(data: Buffer, name: string) {
    const res = await uploadTo(base, data, name);
    assert.equal(res.status, 200, res.body.toString());
    acked.set(res.json().data.FileId, sha1(data));
    return res;
  }

  async function checkEveryAckedFile() {
    for (const [ id, hash ] of acked) {
      const res = await request(`${base}/file/download?fileid=${id}`);
      assert.equal(res.status, 200, `acknowledged file ${id} answered ${res.status}`);
      assert.equal(sha1(res.body), hash, `acknowledged file ${id} changed`);
    }
  }

  it('serves uploads through both workers', async () => {
    const served = new Set<string>();
    for (let i = 0; i < 20; i++) served.add(String((await uploadAcked(randomBytes(20_000 + i), `w${i}.bin`)).headers['x-served-by']));
    assert.equal(served.size, 2);
    assert.deepEqual([ ...served ].map(Number).sort(), pidsOf('app_worker', title).sort());
    await checkEveryAckedFile();
  });

  it('refuses a second demo on the same root, naming the root and the running agent', async () => {
    const [ agent ] = pidsOf('agent_worker', title);
    const second = spawnSync(process.execPath, [ path.join(repo, 'scripts/start.js') ], {
      env: {
        ...process.env, PORT: String(await freePort()), EGG_WORKERS: '1', EGG_TITLE: `${title}-second`, SONOFS_ROOT: path.join(dir, 'data'),
        SONOFS_BUILD_DIR: path.join(dir, 'build'), SONOFS_EXTENT_MIB: '4', HOME: dir, NODE_OPTIONS: '', EGG_TYPESCRIPT: '',
      },
      encoding: 'utf8', timeout: 60_000,
    });
    assert.notEqual(second.status, 0);
    assert.match(second.stdout + second.stderr, new RegExp(`config\\.sonofs\\.root ${path.join(dir, 'data')} is in use by pid ${agent} on host`));
    // the first one did not notice
    await uploadAcked(randomBytes(1000), 'after-second.bin');
    await checkEveryAckedFile();
  });

  it('keeps every acknowledged file intact when a worker is SIGKILLed during an upload', async () => {
    const [ victim ] = pidsOf('app_worker', title);
    // uploads in flight on both workers (new connections alternate between them)
    const inflight = Array.from({ length: 4 }, () => {
      const data = randomBytes(3 * 1024 * 1024);
      return { data, up: slowUpload(base, data) };
    });
    await new Promise(r => setTimeout(r, 500));
    // and more acknowledged while they hang
    for (let i = 0; i < 6; i++) await uploadAcked(randomBytes(50_000), `during${i}.bin`);
    process.kill(victim, 'SIGKILL');
    await new Promise(r => setTimeout(r, 300));
    for (const f of inflight) f.up.finish();
    const outcomes = await Promise.all(inflight.map(f => f.up.result));
    let survived = 0;
    outcomes.forEach((o, i) => {
      if ('status' in o && o.status === 200) {
        survived++;
        acked.set(o.body.data.FileId, sha1(inflight[i].data));
      }
    });
    assert(survived < inflight.length, 'the killed worker should have cut some uploads');
    await until('egg-cluster to refork the worker', () => {
      const now = pidsOf('app_worker', title);
      return now.length === 2 && !now.includes(victim);
    });
    await checkEveryAckedFile();
    // a cut upload left no file behind
    const listed = (await request(`${base}/file/query?limit=1000`)).json().map((f: any) => f.FileId);
    assert.deepEqual([ ...acked.keys() ].filter(id => !listed.includes(id)), []);
    assert.equal(listed.length, acked.size);
  });

  it('keeps allocating without overlap after the agent is SIGKILLed and restarted', async () => {
    const [ agent ] = pidsOf('agent_worker', title);
    process.kill(agent, 'SIGKILL');
    await until('egg-cluster to restart the agent', () => {
      const now = pidsOf('agent_worker', title);
      return now.length === 1 && now[0] !== agent;
    });
    // 4 MiB extents: these need fresh leases from the new agent
    for (let i = 0; i < 6; i++) await uploadAcked(randomBytes(3 * 1024 * 1024), `after-agent${i}.bin`);
    await checkEveryAckedFile();
  });
});
