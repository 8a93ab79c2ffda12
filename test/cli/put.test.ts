import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startInProcess, TestApp } from '../support/app';
import { buildCli, cliEnv, CountingProxy, startCli, until } from '../support/cli';
import { request, sha1 } from '../support/http';

/**
 * `sonofs put` as a user runs it (its own process, real HTTP) against the
 * plugin: parallel uploads over tus, 秒传, standard input, and an upload cut
 * by Ctrl-C that the next run resumes.
 */
describe('cli: sonofs put', function () {
  this.timeout(120_000);
  let running: TestApp;
  let cli: ReturnType<typeof buildCli>;
  let work: string;
  const alice = { Authorization: 'Bearer alice-token' };

  before(async () => {
    running = await startInProcess('cli-put', 'apps/cli-app');
    cli = buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cli-put-'));
  });

  after(async () => {
    await running.close();
    cli.remove();
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** alice's environment: URL and token from the variables, her own resume file */
  const env = (extra: Record<string, string> = {}) => cliEnv({
    SONOFS_URL: running.base, SONOFS_TOKEN: 'alice-token', XDG_CONFIG_HOME: path.join(work, 'config'), ...extra,
  });
  const sonofs = (args: string[], e = env(), input?: Buffer) => startCli(cli.bin, args, e, { cwd: work, input }).done;

  function write(name: string, data: Buffer): string {
    const file = path.join(work, name);
    fs.writeFileSync(file, data);
    return file;
  }

  /** The bytes the server holds under a file id. */
  async function stored(fileId: string): Promise<Buffer> {
    const res = await request(`${running.base}/file/download?fileid=${fileId}`, { headers: alice });
    assert.equal(res.status, 200, res.body.toString());
    return res.body;
  }

  it('uploads many files, three at a time; every file is on the server with its sha1 and name', async () => {
    const sizes = [ 0, 1, 700, 64 * 1024, 1024 * 1024 + 5, 3 * 1024 * 1024 + 17, 2 * 1024 * 1024, 5000 ];
    const files = sizes.map((n, i) => ({ name: `many-${i}.bin`, data: randomBytes(n) }));
    for (const f of files) write(f.name, f.data);
    const r = await sonofs([ 'put', '--parallel', '3', '--json', ...files.map(f => f.name) ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trim().split('\n').map(l => JSON.parse(l));
    assert.equal(lines.length, files.length);
    for (const f of files) {
      const line = lines.find(l => l.name === f.name);
      assert.ok(line, `no line for ${f.name}`);
      assert.equal(line.sha1, sha1(f.data));
      assert.equal(line.size, f.data.length);
      assert.equal(sha1(await stored(line.fileId)), sha1(f.data), `${f.name} on the server`);
      const meta = await request(`${running.base}/file/meta?filehash=${line.sha1}`, { headers: alice });
      assert.equal(meta.json().FileName, f.name);
      assert.equal(meta.json().FileId, line.fileId);
    }
    // the finished uploads are forgotten
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(work, 'config/sonofs/uploads.json'), 'utf8')), {});
  });

  it('prints one line per file: name, file id, sha1 and the speed', async () => {
    const data = randomBytes(300_000);
    write('line.bin', data);
    const r = await sonofs([ 'put', 'line.bin' ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^line\\.bin  [A-Za-z0-9_-]{28}  ${sha1(data)}  [\\d.]+ (B|KiB|MiB|GiB)/s \\(293 KiB in [\\d.]+ s\\)\\n$`));
  });

  it('秒传: content the store has (another user\'s) is linked instantly and nothing is sent', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    write('shared.bin', data);
    const first = await sonofs([ 'put', 'shared.bin', '--json' ], env({ SONOFS_TOKEN: 'bob-token' }));
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).instant, false);

    const proxy = new CountingProxy(Number(new URL(running.base).port));
    const via = await proxy.listen();
    try {
      write('mine.bin', data);
      const r = await sonofs([ 'put', 'mine.bin', '--url', via ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^mine\\.bin  [A-Za-z0-9_-]{28}  ${sha1(data)}  instant\\n$`));
      assert.ok(proxy.up < 10_000, `${proxy.up} bytes sent for an instant upload`);
    } finally {
      await proxy.close();
    }
    const meta = await request(`${running.base}/file/meta?filehash=${sha1(data)}`, { headers: alice });
    assert.equal(meta.json().FileName, 'mine.bin');
    // --no-instant sends the bytes all the same
    const again = await sonofs([ 'put', 'mine.bin', '--no-instant', '--json' ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(again.stdout).instant, false);
  });

  it('reads standard input (-) in chunks, with --name; the sha1 is checked against the server\'s', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 3);
    const r = await sonofs([ 'put', '-', '--name', 'piped.bin', '--json' ], env(), data);
    assert.equal(r.code, 0, r.stderr);
    const line = JSON.parse(r.stdout);
    assert.equal(line.name, 'piped.bin');
    assert.equal(line.size, data.length);
    assert.equal(line.sha1, sha1(data));
    assert.equal(sha1(await stored(line.fileId)), sha1(data));
  });

  it('after Ctrl-C, the same command resumes the upload where it stopped instead of starting over', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    write('big.bin', data);
    const config = path.join(work, 'config-resume');
    const proxy = new CountingProxy(Number(new URL(running.base).port));
    const via = await proxy.listen();
    try {
      // 8 MiB/s: the upload takes 3 s, and is cut once 6 MiB reached the server
      proxy.reset(8 * 1024 * 1024);
      const first = startCli(cli.bin, [ 'put', 'big.bin', '--url', via ], env({ XDG_CONFIG_HOME: config }), { cwd: work });
      await until(() => proxy.up > 6 * 1024 * 1024, 60_000, '6 MiB sent');
      first.child.kill('SIGINT');
      const cut = await first.done;
      assert.equal(cut.code, 130, cut.stderr);
      assert.match(cut.stderr, /interrupted: run the same command again to resume/);
      assert.equal(cut.stdout, '');

      // the run remembered its upload, and the server kept what arrived
      const remembered = Object.values(JSON.parse(fs.readFileSync(path.join(config, 'sonofs/uploads.json'), 'utf8'))) as Array<{ uploadUrl: string }>;
      assert.equal(remembered.length, 1);
      const uploadPath = new URL(remembered[0].uploadUrl).pathname;
      // the bytes still in the socket buffers reach the server, and it stores them on its own
      // time: the offset is read once the proxy let go, until it stays the same
      await until(() => proxy.open === 0, 30_000, 'the proxy to close');
      const offsetNow = async () => Number((await request(`${running.base}${uploadPath}`, { method: 'HEAD', headers: { ...alice, 'Tus-Resumable': '1.0.0' } })).headers['upload-offset']);
      let offset = await offsetNow();
      for (let seen = -1; offset !== seen;) {
        await new Promise(r => setTimeout(r, 300));
        [ seen, offset ] = [ offset, await offsetNow() ];
      }
      assert.ok(offset > 0 && offset < data.length, `offset ${offset}`);

      proxy.reset();
      const second = await sonofs([ 'put', 'big.bin', '--url', via, '--json' ], env({ XDG_CONFIG_HOME: config }));
      assert.equal(second.code, 0, second.stderr);
      const line = JSON.parse(second.stdout);
      assert.equal(line.resumedFrom, offset);
      assert.equal(line.sent, data.length - offset);
      // only the rest went over the wire (plus the requests' heads)
      assert.ok(proxy.up < data.length - offset + 20_000, `${proxy.up} bytes sent to finish ${data.length - offset}`);
      assert.equal(sha1(await stored(line.fileId)), sha1(data));
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(config, 'sonofs/uploads.json'), 'utf8')), {});
    } finally {
      await proxy.close();
    }
  });

  it('a dropped connection is resumed within the run: the server gets the rest, not the file again', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    write('dropped.bin', data);
    const proxy = new CountingProxy(Number(new URL(running.base).port));
    const via = await proxy.listen();
    try {
      proxy.reset(8 * 1024 * 1024);
      const run = startCli(cli.bin, [ 'put', 'dropped.bin', '--url', via, '--json' ], env({ XDG_CONFIG_HOME: path.join(work, 'config-dropped') }), { cwd: work });
      await until(() => proxy.up > 6 * 1024 * 1024, 60_000, '6 MiB sent');
      const before = proxy.up;
      proxy.cut();
      proxy.rate = undefined;
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
      const line = JSON.parse(r.stdout);
      assert.equal(sha1(await stored(line.fileId)), sha1(data));
      // Starting over would send all that went before the cut again. Resuming sends again only what the
      // server had not stored yet (bytes in socket buffers at the cut: several MiB on a loaded machine).
      assert.ok(proxy.up < data.length + before - 1024 * 1024, `${proxy.up} bytes sent for ${data.length} (cut after ${before})`);
    } finally {
      await proxy.close();
    }
  });
});
