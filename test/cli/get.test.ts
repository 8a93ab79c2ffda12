import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startInProcess, TestApp } from '../support/app';
import { buildCli, cliEnv, CountingProxy, startCli } from '../support/cli';
import { sha1, uploadTo } from '../support/http';

/** `sonofs get` in its own process: by id or sha1, resumed from a partial file, checked by sha1. */
describe('cli: sonofs get', function () {
  this.timeout(120_000);
  let running: TestApp;
  let cli: ReturnType<typeof buildCli>;
  let work: string;
  let proxy: CountingProxy;
  let via: string;
  const data = randomBytes(6 * 1024 * 1024 + 11);
  let fileId: string;

  before(async () => {
    running = await startInProcess('cli-get', 'apps/cli-app');
    cli = buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cli-get-'));
    proxy = new CountingProxy(Number(new URL(running.base).port));
    via = await proxy.listen();
    const up = await uploadTo(running.base, data, 'photo.raw', { Authorization: 'Bearer alice-token' });
    assert.equal(up.status, 200, up.body.toString());
    fileId = up.json().data.FileId;
  });

  after(async () => {
    await proxy.close();
    await running.close();
    cli.remove();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const sonofs = (args: string[]) => startCli(cli.bin, args, cliEnv({
    SONOFS_URL: via, SONOFS_TOKEN: 'alice-token', XDG_CONFIG_HOME: path.join(work, 'config'),
  }), { cwd: work }).done;
  const partOf = (out: string) => path.join(work, `${out}.${sha1(data).slice(0, 12)}.part`);

  it('downloads by sha1 under the caller\'s name for the file, and says so', async () => {
    const r = await sonofs([ 'get', sha1(data) ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.readFileSync(path.join(work, 'photo.raw')).equals(data));
    assert.match(r.stdout, new RegExp(`^photo\\.raw  6\\.00 MiB  sha1 ${sha1(data)} ok  [\\d.]+ \\w+/s\\n$`));
    // a second run does not overwrite it without --force
    const again = await sonofs([ 'get', sha1(data) ]);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'sonofs: photo.raw exists; pass --force to overwrite it\n');
    assert.equal((await sonofs([ 'get', sha1(data), '--force' ])).code, 0);
  });

  it('resumes from a partial file: only the rest is sent, with Range, and the whole is checked', async () => {
    const have = 4 * 1024 * 1024 + 5;
    fs.writeFileSync(partOf('resumed.raw'), data.subarray(0, have));
    proxy.reset();
    const r = await sonofs([ 'get', fileId, '-o', 'resumed.raw', '--json' ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fs.readFileSync(path.join(work, 'resumed.raw')).equals(data));
    assert.equal(fs.existsSync(partOf('resumed.raw')), false);
    const result = JSON.parse(r.stdout);
    assert.deepEqual({ resumedFrom: result.resumedFrom, received: result.received, sha1: result.sha1 }, { resumedFrom: have, received: data.length - have, sha1: sha1(data) });
    // HEAD + the ranged GET: the rest of the file and two answers' heads
    assert.ok(proxy.down < data.length - have + 4000, `${proxy.down} bytes received for ${data.length - have}`);
  });

  it('a partial file with wrong bytes fails the sha1 check: exit 6, and the partial file goes', async () => {
    fs.writeFileSync(partOf('bad.raw'), Buffer.concat([ data.subarray(0, 1000), Buffer.from('garbage'), data.subarray(1007, 3000) ]));
    const r = await sonofs([ 'get', fileId, '-o', 'bad.raw' ]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`^sonofs: get ${fileId}: sha1 mismatch: expected ${sha1(data)}, got [0-9a-f]{40} \\(6\\.00 MiB of 6\\.00 MiB\\); the partial file was removed\\n$`));
    assert.equal(fs.existsSync(path.join(work, 'bad.raw')), false);
    assert.equal(fs.existsSync(partOf('bad.raw')), false);
    // run again: from scratch, right
    const again = await sonofs([ 'get', fileId, '-o', 'bad.raw' ]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(fs.readFileSync(path.join(work, 'bad.raw')).equals(data));
  });

  it('-o - writes the bytes to standard output and the result to standard error', async () => {
    const child = startCli(cli.bin, [ 'get', fileId, '-o', '-' ], cliEnv({ SONOFS_URL: via, SONOFS_TOKEN: 'alice-token' }));
    const chunks: Buffer[] = [];
    child.child.stdout!.removeAllListeners('data');
    child.child.stdout!.on('data', c => chunks.push(c));
    const r = await child.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Buffer.concat(chunks).equals(data));
    assert.match(r.stderr, new RegExp(`^-  6\\.00 MiB  sha1 ${sha1(data)} ok`));
  });
});
