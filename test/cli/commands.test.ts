import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startInProcess, TestApp } from '../support/app';
import { buildCli, cliEnv, startCli } from '../support/cli';
import { freePort, request, sha1, uploadTo } from '../support/http';

/**
 * ls, stat, mv, rm and status with --json for scripts, --help for every
 * command, and the exit code and one-line message of each kind of failure.
 */
describe('cli: sonofs ls, stat, mv, rm, status; help and exit codes', function () {
  this.timeout(120_000);
  let running: TestApp;
  let cli: ReturnType<typeof buildCli>;
  let work: string;
  const alice = { Authorization: 'Bearer alice-token' };
  const a = randomBytes(1500);
  const b = randomBytes(70_000);
  let aId: string;
  let bId: string;

  before(async () => {
    running = await startInProcess('cli-commands', 'apps/cli-app');
    cli = buildCli();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cli-commands-'));
    aId = (await uploadTo(running.base, a, 'a.txt', alice)).json().data.FileId;
    bId = (await uploadTo(running.base, b, 'b.bin', alice)).json().data.FileId;
  });

  after(async () => {
    await running.close();
    cli.remove();
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** with the URL from --url and the token from SONOFS_TOKEN, unless a test says otherwise */
  const sonofs = (args: string[], env: Record<string, string | undefined> = {}) => startCli(cli.bin, [ '--url', running.base, ...args ], cliEnv({
    SONOFS_TOKEN: 'alice-token', XDG_CONFIG_HOME: path.join(work, 'config'), ...env,
  }), { cwd: work }).done;

  async function json(args: string[]) {
    const r = await sonofs([ ...args, '--json' ]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  }

  it('ls --json: the caller\'s files, newest first; ls: a table', async () => {
    const files = await json([ 'ls' ]);
    assert.deepEqual(files.map((f: any) => [ f.name, f.fileId, f.sha1, f.size ]), [ [ 'b.bin', bId, sha1(b), b.length ], [ 'a.txt', aId, sha1(a), a.length ] ]);
    assert.match(files[0].uploadedAt, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.equal((await json([ 'ls', '--limit', '1' ])).length, 1);
    const table = (await sonofs([ 'ls' ])).stdout.split('\n');
    assert.match(table[0], /^SIZE +UPLOADED +FILE ID +SHA1 +NAME$/);
    assert.match(table[1], new RegExp(`^68\\.4 KiB +\\S+ \\S+ +${bId}  ${sha1(b)}  b\\.bin$`));
    // another user sees none of them
    assert.deepEqual(await json([ 'ls', '--token', 'bob-token' ]), []);
  });

  it('stat --json by id and by sha1; by id for a user who does not have the file: no name', async () => {
    const byId = await json([ 'stat', aId ]);
    const bySha1 = await json([ 'stat', sha1(a) ]);
    assert.deepEqual(byId, bySha1);
    assert.deepEqual({ ...byId, uploadedAt: 'x', storedAt: 'x' }, {
      name: 'a.txt', fileId: aId, sha1: sha1(a), size: a.length, mime: 'text/plain', uploadedAt: 'x', storedAt: 'x', yours: true,
    });
    // the flag wins over SONOFS_TOKEN
    const bob = JSON.parse((await sonofs([ 'stat', aId, '--json', '--token', 'bob-token' ])).stdout);
    assert.deepEqual([ bob.name, bob.sha1, bob.yours, bob.uploadedAt ], [ null, sha1(a), false, null ]);
    const text = (await sonofs([ 'stat', aId ])).stdout;
    assert.match(text, new RegExp(`^name +a\\.txt\\nfile id +${aId}\\nsha1 +${sha1(a)}\\nsize +1\\.46 KiB \\(1500 bytes\\)\\n`));
  });

  it('mv renames only the caller\'s name; rm removes it; --json for both', async () => {
    const renamed = await json([ 'mv', bId, 'c.bin' ]);
    assert.equal(renamed.name, 'c.bin');
    assert.equal((await request(`${running.base}/file/meta?filehash=${sha1(b)}`, { headers: alice })).json().FileName, 'c.bin');
    const plain = await sonofs([ 'mv', sha1(b), 'd.bin' ]);
    assert.equal(plain.stdout, `c.bin -> d.bin  ${bId}  ${sha1(b)}\n`);
    const removed = await json([ 'rm', sha1(b) ]);
    assert.deepEqual(removed.map((f: any) => [ f.name, f.sha1 ]), [ [ 'd.bin', sha1(b) ] ]);
    assert.equal((await request(`${running.base}/file/meta?filehash=${sha1(b)}`, { headers: alice })).status, 404);
    // the one that is gone is not found any more
    const again = await sonofs([ 'rm', sha1(b) ]);
    assert.equal(again.code, 3);
    assert.equal(again.stderr, `sonofs: rm ${sha1(b)}: you have no file with sha1 ${sha1(b)}\n`);
  });

  it('status: a table of the node\'s health and space; --json for scripts', async () => {
    const s = await json([ 'status' ]);
    assert.equal(s.status, 'ok');
    assert.deepEqual([ s.group, s.server ], [ 2, 5 ]);
    assert.ok(s.disk.available > 0);
    const r = await sonofs([ 'status' ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^server +http:\/\/127\.0\.0\.1:\d+\/\nstatus +OK\nnode +group 2, server 5\n/);
    assert.match(r.stdout, /\nCHECK +STATE +DETAIL\ncatalog +OK +read in [\d.]+ ms\nroot +OK +writable\nspace +OK +[\d.]+% of the disk available\n$/);
  });

  it('--help for the program and every command: exit 0, the usage on stdout', async () => {
    for (const cmd of [ [], [ 'put' ], [ 'get' ], [ 'ls' ], [ 'stat' ], [ 'mv' ], [ 'rm' ], [ 'status' ], [ 'reindex' ] ]) {
      const r = await sonofs([ ...cmd, '--help' ]);
      assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: sonofs ${cmd.length ? cmd[0] : ''}`), r.stdout);
      assert.match(r.stdout, /--url <url>/);
    }
    const root = await sonofs([ '--help' ]);
    assert.match(root.stdout, /Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth refused, 5 server unreachable or failing,\n6 sha1 mismatch, 130 interrupted/);
  });

  it('exit 2 for bad usage: unknown option or command, missing argument, bad value, malformed --url', async () => {
    const cases: Array<[string[], RegExp]> = [
      [ [ 'ls', '--frobnicate' ], /^sonofs: unknown option '--frobnicate'\n/ ],
      [ [ 'frob' ], /^sonofs: unknown command 'frob'\n/ ],
      [ [ 'get' ], /^sonofs: missing required argument 'ref'\n/ ],
      [ [ 'put', 'x', '--parallel', 'lots' ], /--parallel must be an integer from 1 to 64\n$/ ],
      [ [ 'stat', 'not-an-id' ], /^sonofs: "not-an-id" is neither a file id \(28 characters\) nor a sha1 \(40 hex digits\)\n$/ ],
      [ [ 'ls', '--url', 'ftp://example.com' ], /^sonofs: invalid URL "ftp:\/\/example\.com": only http:\/\/ and https:\/\/ are supported\n$/ ],
      [ [ 'ls', '--url', 'not a url' ], /^sonofs: invalid URL "not a url": expected e\.g\. http:\/\/127\.0\.0\.1:7001\n$/ ],
      [ [], /^Usage: sonofs/ ],
      [ [ 'reindex', '--root', '/nowhere' ], /^sonofs: reindex: name the cluster's Redis with --redis \(or SONOFS_REDIS_URL\)\n$/ ],
      [ [ 'reindex', '--redis', 'http://127.0.0.1:6379', '--root', '/nowhere' ], /^sonofs: --redis: expected redis:\/\/host:port/ ],
    ];
    for (const [ args, stderr ] of cases) {
      const r = await sonofs(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, stderr, args.join(' '));
    }
  });

  it('exit 3 for what is not there: an unknown file id or sha1, a missing local file', async () => {
    const unknownId = `${aId.slice(0, 20)}AAAAAAAA`;
    const cases: Array<[string[], string]> = [
      [ [ 'get', unknownId ], `sonofs: get ${unknownId}: no file has this id\n` ],
      [ [ 'rm', unknownId ], `sonofs: rm ${unknownId}: no file has this id\n` ],
      [ [ 'stat', 'f'.repeat(40) ], `sonofs: stat ${'f'.repeat(40)}: you have no file with this sha1\n` ],
      [ [ 'get', 'f'.repeat(40) ], `sonofs: get ${'f'.repeat(40)}: you have no file with this sha1\n` ],
      [ [ 'put', 'no-such-file.bin' ], 'sonofs: no-such-file.bin: no such file or directory\n' ],
    ];
    for (const [ args, stderr ] of cases) {
      const r = await sonofs(args);
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, stderr);
    }
  });

  it('exit 4 when the server refuses the token, or wants one; on put too (tus)', async () => {
    const wrong = await sonofs([ 'ls', '--token', 'stolen' ]);
    assert.equal(wrong.code, 4);
    assert.equal(wrong.stderr, 'sonofs: ls: the server refused the token (401 UNAUTHORIZED)\n');
    const none = await sonofs([ 'status' ], { SONOFS_TOKEN: undefined });
    assert.equal(none.code, 4);
    assert.equal(none.stderr, 'sonofs: status: the server wants a token: pass --token or set SONOFS_TOKEN (401 UNAUTHORIZED)\n');
    fs.writeFileSync(path.join(work, 'up.bin'), randomBytes(2000));
    const put = await sonofs([ 'put', 'up.bin', '--no-instant' ], { SONOFS_TOKEN: 'stolen' });
    assert.equal(put.code, 4);
    assert.equal(put.stderr, 'sonofs: up.bin: the server refused the token (401 UNAUTHORIZED)\n');
  });

  it('exit 5 when the server cannot be reached: one line, and the stack trace only with --verbose', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const r = await sonofs([ 'ls', '--url', closed ]);
    assert.equal(r.code, 5);
    assert.equal(r.stderr, `sonofs: ls: cannot reach ${closed}: connection refused\n`);
    const verbose = await sonofs([ 'ls', '--url', closed, '--verbose' ]);
    assert.equal(verbose.code, 5);
    assert.match(verbose.stderr, /^> GET http:\/\/127\.0\.0\.1:\d+\/file\/query\?limit=100\nsonofs: ls: cannot reach .*: connection refused\nError: connect ECONNREFUSED 127\.0\.0\.1:\d+\n +at /);
    // SONOFS_URL, when no flag names another
    const env = await startCli(cli.bin, [ 'status' ], cliEnv({ SONOFS_URL: closed })).done;
    assert.equal(env.code, 5);
    assert.equal(env.stderr, `sonofs: status: cannot reach ${closed}: connection refused\n`);
    // a server that is not sonofs (here: the app with another prefix)
    const other = await sonofs([ 'ls', '--prefix', '/nothing' ]);
    assert.equal(other.code, 5);
    assert.match(other.stderr, /^sonofs: ls: http:\/\/127\.0\.0\.1:\d+\/nothing\/query\?limit=100 is not a sonofs route; check --url and --prefix \(404/);
  });
});
