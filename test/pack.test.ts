import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, multipart, request, sha1, SimpleResponse } from './support/http';

const repo = path.join(__dirname, '..');
const fixture = path.join(__dirname, 'fixtures/consumer');
const checks = path.join(__dirname, 'fixtures/consumer-checks');

/**
 * The environment of npm, tsc and the app: egg-bin's ts-node hooks and test
 * settings must not reach them, nor what `npm test` says about this package.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const key of Object.keys(env)) {
    if (/^(NODE_OPTIONS|EGG_TYPESCRIPT|EGG_SERVER_ENV|NODE_ENV|INIT_CWD|npm_config_local_prefix)$|^npm_(package|lifecycle)_/i.test(key)) delete env[key];
  }
  return env;
}

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], cwd: string, env = childEnv()): Promise<Run> {
  return new Promise(resolve => {
    execFile(cmd, args, { cwd, env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function mustRun(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await run(cmd, args, cwd, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')} failed in ${cwd}:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

/** Files under dir, relative, with `/` separators. */
function walk(dir: string, rel = ''): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap(e =>
    e.isDirectory() ? walk(dir, path.posix.join(rel, e.name)) : [ path.posix.join(rel, e.name) ]);
}

/**
 * The working tree as a developer sees it (tracked and new files, nothing
 * ignored such as build output), so packing never writes into the repository,
 * where other test files and other work go on.
 */
function copySources(to: string): void {
  let files: string[];
  try {
    files = execFileSync('git', [ 'ls-files', '-z', '--cached', '--others', '--exclude-standard' ], { cwd: repo })
      .toString().split('\0').filter(Boolean);
  } catch {
    files = walk(repo).filter(f => !/^(node_modules|\.git|dist|data|logs|run|coverage)\//.test(f));
  }
  for (const f of files) {
    const src = path.join(repo, f);
    if (f.startsWith('node_modules/') || !fs.existsSync(src)) continue; // deleted, not yet staged
    fs.mkdirSync(path.dirname(path.join(to, f)), { recursive: true });
    fs.copyFileSync(src, path.join(to, f));
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(to, 'node_modules'), 'dir');
}

/** pids of processes whose command line carries this title. */
function pidsWithTitle(title: string): number[] {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  return out.split('\n').filter(l => l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0]));
}

describe('pack: the npm package in an Egg 3 TypeScript app of its own', function () {
  this.timeout(300_000);
  let tmp: string;
  /** the copy that was packed */
  let src: string;
  let app: string;
  let tarball: string;
  let packed: string[];
  let typeCheck: Promise<Run>;
  let base: string;
  let title: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-pack-'));
    src = path.join(tmp, 'egg-sonofs');
    copySources(src);
    const out = await mustRun('npm', [ 'pack', '--json', '--pack-destination', tmp ], src);
    // the JSON follows whatever the prepack script printed
    const [ info ] = JSON.parse(out.slice(out.search(/^\[/m)));
    tarball = path.join(tmp, info.filename);
    packed = info.files.map((f: { path: string }) => f.path);
    app = path.join(tmp, 'my-files');
    fs.cpSync(fixture, app, { recursive: true });
    fs.cpSync(checks, path.join(app, 'checks'), { recursive: true });
    // the README's `npm install egg-sonofs`, from the tarball (the npm cache has the rest after `npm ci`)
    await mustRun('npm', [ 'install', '--no-audit', '--no-fund', '--prefer-offline', tarball ], app);
    // the type check runs while the app is built and started: one core each
    typeCheck = checkTypes();
    await mustRun('npm', [ 'run', 'build' ], app);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    title = `sonofs-pack-test-${port}`;
    await mustRun(scripts(), [ 'start', '--daemon', '--workers=2', `--port=${port}`, `--title=${title}`,
      `--stdout=${path.join(tmp, 'master-stdout.log')}`, `--stderr=${path.join(tmp, 'master-stderr.log')}` ], app, eggEnv());
  });

  after(async () => {
    try {
      await typeCheck;
      if (title) {
        await run(scripts(), [ 'stop', `--title=${title}` ], app, eggEnv());
        const deadline = Date.now() + 10_000;
        while (pidsWithTitle(title).length && Date.now() < deadline) await new Promise(r => setTimeout(r, 200));
        assert.deepEqual(pidsWithTitle(title), [], 'processes left after egg-scripts stop');
      }
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  const scripts = () => path.join(app, 'node_modules/.bin/egg-scripts');
  // egg-scripts puts logs under the user's home (not $HOME) unless told otherwise
  const eggEnv = () => childEnv({ EGG_HOME: tmp, NODE_LOG_DIR: path.join(tmp, 'alinode') });

  /** The app, a file that must compile (real types, not any) and one with six mistakes, in one program. */
  function checkTypes(): Promise<Run> {
    fs.writeFileSync(path.join(app, 'tsconfig.checks.json'), JSON.stringify({
      extends: './tsconfig.json',
      compilerOptions: { noEmit: true, strict: true, noImplicitAny: true, skipLibCheck: false },
      include: [ 'app/**/*.ts', 'config/**/*.ts', 'checks/*.ts' ],
    }));
    const tsc = path.join(app, 'node_modules/typescript/bin/tsc');
    return run(process.execPath, [ tsc, '-p', 'tsconfig.checks.json', '--pretty', 'false' ], app);
  }

  it('ships the build, declarations for all the typings import, LICENSE, the upload page\'s bundle, and no .ts sources', () => {
    for (const f of [ 'LICENSE', 'README.md', 'package.json', 'typings/index.d.ts', 'app.js', 'agent.js', 'config/config.default.js',
      'config/config.default.d.ts', 'app/lib/context-api.d.ts', 'lib/index.js', 'lib/index.d.ts', 'bin/sonofs', 'cli/index.js',
      'page/dist/manifest.json' ]) {
      assert.ok(packed.includes(f), `${f} is not in the tarball`);
    }
    // egg in TypeScript mode would load a .ts next to its .js
    assert.deepEqual(packed.filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts')), []);
    assert.deepEqual(packed.filter(f => /^(test|bench|example|scripts|page\/src)\/|\.map$|\.tgz$/.test(f)), []);
    // the page's scripts and style, bundled at prepack (no CDN at run time)
    assert.deepEqual(packed.filter(f => f.startsWith('page/')).map(f => f.replace(/-[A-Z0-9]{8}\./, '-HASH.')).sort(),
      [ 'page/dist/hash-worker-HASH.js', 'page/dist/manifest.json', 'page/dist/page-HASH.js', 'page/dist/page-style-HASH.css' ]);
    // every relative import of a shipped declaration is shipped
    const pkg = path.join(app, 'node_modules/egg-sonofs');
    const missing: string[] = [];
    for (const f of packed.filter(p => p.endsWith('.d.ts'))) {
      const text = fs.readFileSync(path.join(pkg, f), 'utf8');
      for (const m of text.matchAll(/(?:from |import\()['"](\.[^'"]*)['"]/g)) {
        const target = path.posix.join(path.posix.dirname(f), m[1]);
        if (!packed.includes(`${target}.d.ts`) && !packed.includes(`${target}/index.d.ts`)) missing.push(`${f} → ${m[1]}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('carries each compiled file\'s TypeScript source in its inline source map', () => {
    const pkg = path.join(app, 'node_modules/egg-sonofs');
    // (the upload page's bundles are esbuild's, from page/src, and carry no map)
    const js = packed.filter(f => f.endsWith('.js') && !f.startsWith('page/dist/'));
    assert.ok(js.length > 30);
    for (const f of js) {
      const m = /\/\/# sourceMappingURL=data:application\/json;base64,(\S+)\s*$/.exec(fs.readFileSync(path.join(pkg, f), 'utf8'));
      assert.ok(m, `${f} has no inline source map`);
      const map = JSON.parse(Buffer.from(m[1], 'base64').toString());
      const ts = f.replace(/\.js$/, '.ts');
      assert.equal(map.sourcesContent?.[0], fs.readFileSync(path.join(src, ts), 'utf8'), `${f}: the map does not carry ${ts}`);
    }
  });

  it('is what README "Use it in your app" says, file for file', () => {
    const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
    const start = readme.indexOf('## Use it in your app\n');
    assert.ok(start >= 0);
    const section = readme.slice(start, readme.indexOf('\n### ', start));
    const blocks = new Map<string, string>();
    for (const m of section.matchAll(/^`([^`\s]+)`:\n\n```\w*\n([\s\S]*?)^```$/gm)) blocks.set(m[1], m[2]);
    assert.deepEqual([ ...blocks.keys() ].sort(), walk(fixture).sort());
    for (const [ file, text ] of blocks) assert.equal(text, fs.readFileSync(path.join(fixture, file), 'utf8'), `README's ${file}`);
  });

  it('types the consumer under strict, noImplicitAny and skipLibCheck false; the six mistakes fail as expected', async () => {
    const r = await typeCheck;
    const output = r.stdout + r.stderr;
    const errors = output.split('\n').filter(l => /error TS\d+:/.test(l));
    const got = errors.map(l => {
      const m = /^(.*?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(l);
      assert.ok(m, `an error outside the files: ${l}`);
      return { where: `${m[1]}:${m[2]}`, code: m[3], message: m[4] };
    });
    const expected = fs.readFileSync(path.join(checks, 'mistakes.ts'), 'utf8').split('\n').flatMap((line, i) => {
      const m = /\/\/ expect (TS\d+): (.*)$/.exec(line);
      return m ? [ { where: `checks/mistakes.ts:${i + 1}`, code: m[1], part: m[2] } ] : [];
    });
    assert.equal(expected.length, 6);
    assert.deepEqual(got.map(e => `${e.where} ${e.code}`), expected.map(e => `${e.where} ${e.code}`), output);
    for (const [ i, e ] of expected.entries()) assert.ok(got[i].message.includes(e.part), `${e.where}: ${got[i].message}`);
  });

  describe('built with tsc, started with egg-scripts (2 workers)', () => {
    const alice = { Authorization: 'Bearer alice-token' };
    const photo = randomBytes(300_000);
    let uploaded: { fileId: string; fileHash: string; size: number; mime: string; filename: string };

    function json(res: SimpleResponse) {
      assert.match(String(res.headers['content-type']), /json/, res.body.toString());
      return res.json();
    }

    it('uploads through the app\'s own controller (ctx.getFileStream) and downloads byte-exact', async () => {
      const { body, contentType } = multipart([ { name: 'file', filename: 'photo.png', type: 'image/png', data: photo } ]);
      const up = await request(`${base}/api/files`, { method: 'POST', headers: { ...alice, 'Content-Type': contentType }, body });
      assert.equal(up.status, 200, up.body.toString());
      uploaded = json(up);
      const { fileHash, size, mime, filename } = uploaded;
      assert.deepEqual({ fileHash, size, mime, filename }, { fileHash: sha1(photo), size: photo.length, mime: 'image/png', filename: 'photo.png' });

      const whole = await request(`${base}/api/files/${uploaded.fileId}`, { headers: alice });
      assert.equal(whole.status, 200);
      assert.equal(whole.headers['content-type'], 'image/png');
      assert.ok(whole.body.equals(photo), 'getFile gave other bytes');

      const streamed = await request(`${base}/api/files/${uploaded.fileId}/stream`, { headers: alice });
      assert.ok(streamed.body.equals(photo), 'createReadStream gave other bytes');
      const part = await request(`${base}/api/files/${uploaded.fileId}/stream?start=1000&end=1999`, { headers: alice });
      assert.ok(part.body.equals(photo.subarray(1000, 2000)), 'createReadStream with a range gave other bytes');
    });

    it('stores what the app makes itself (upload(Readable, { filename, mime }))', async () => {
      const text = `a note ${randomBytes(8).toString('hex')}`;
      const up = await request(`${base}/api/notes`, {
        method: 'POST', headers: { ...alice, 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify({ name: 'note.txt', text })),
      });
      assert.equal(up.status, 200, up.body.toString());
      const note = json(up);
      assert.equal(note.filename, 'note.txt');
      const back = await request(`${base}/api/files/${note.fileId}`, { headers: alice });
      assert.equal(back.body.toString(), text);
      assert.match(String(back.headers['content-type']), /^text\/plain/);
    });

    it('answers stat, meta and list for the request\'s user only', async () => {
      const stat = json(await request(`${base}/api/files/${uploaded.fileId}/stat`, { headers: alice }));
      assert.equal(stat.fileHash, uploaded.fileHash);
      assert.equal(stat.size, photo.length);
      const meta = json(await request(`${base}/api/hashes/${uploaded.fileHash}`, { headers: alice }));
      assert.equal(meta.fileId, uploaded.fileId);
      assert.equal(meta.name, 'photo.png');
      const list = json(await request(`${base}/api/files`, { headers: alice }));
      assert.deepEqual(list.map((f: { name: string }) => f.name).sort(), [ 'note.txt', 'photo.png' ]);

      const bob = { Authorization: 'Bearer bob-token' };
      assert.equal((await request(`${base}/api/hashes/${uploaded.fileHash}`, { headers: bob })).status, 404);
      assert.deepEqual(json(await request(`${base}/api/files`, { headers: bob })), []);
      const nobody = await request(`${base}/api/files`);
      assert.equal(nobody.status, 401);
      assert.equal(json(nobody).code, 'UNAUTHORIZED');
    });

    it('installs the command line: npx sonofs puts and gets a file with the app\'s token', async () => {
      const env = childEnv({ SONOFS_URL: base, SONOFS_TOKEN: 'alice-token', XDG_CONFIG_HOME: path.join(tmp, 'config') });
      const help = await run('npx', [ '--no-install', 'sonofs', '--help' ], app, env);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: sonofs \[options\] \[command\]/);
      const data = randomBytes(1_500_000);
      fs.writeFileSync(path.join(tmp, 'cli.bin'), data);
      const put = await run('npx', [ '--no-install', 'sonofs', 'put', path.join(tmp, 'cli.bin') ], app, env);
      assert.equal(put.code, 0, put.stderr);
      assert.match(put.stdout, new RegExp(`^cli\\.bin  [A-Za-z0-9_-]{28}  ${sha1(data)}  `));
      const get = await run('npx', [ '--no-install', 'sonofs', 'get', sha1(data), '-o', path.join(tmp, 'cli-back.bin') ], app, env);
      assert.equal(get.code, 0, get.stderr);
      assert.ok(fs.readFileSync(path.join(tmp, 'cli-back.bin')).equals(data));
      const refused = await run('npx', [ '--no-install', 'sonofs', 'ls' ], app, { ...env, SONOFS_TOKEN: 'nobody' });
      assert.equal(refused.code, 4, refused.stderr);
    });

    it('serves the upload page with its scripts and style from the installed package', async () => {
      const page = await request(`${base}/file/upload`);
      assert.equal(page.status, 200);
      const html = page.body.toString();
      const assets = [ ...html.matchAll(/(?:src|href)="(\/file\/upload\/assets\/[^"]+)"/g) ].map(m => m[1]);
      assets.push(JSON.parse(/id="sonofs-page-config">(.*?)<\/script>/.exec(html)![1]).hashWorker);
      assert.equal(assets.length, 3, html);
      for (const url of assets) {
        const res = await request(`${base}${url}`);
        assert.equal(res.status, 200, url);
        assert.ok(res.body.length > 1000, url);
      }
    });

    it('removes the file; the app\'s own `instanceof SonofsError` sees the store\'s 404', async () => {
      const gone = await request(`${base}/api/hashes/${uploaded.fileHash}`, { method: 'DELETE', headers: alice });
      assert.equal(gone.status, 200, gone.body.toString());
      assert.deepEqual(json(gone), { contentGone: true });
      assert.equal((await request(`${base}/api/hashes/${uploaded.fileHash}`, { headers: alice })).status, 404);
      // answered by app/middleware/sonofs_errors.ts, which imports SonofsError from 'egg-sonofs'
      const res = await request(`${base}/api/files/${uploaded.fileId}`, { headers: alice });
      assert.equal(res.status, 404);
      assert.equal(json(res).code, 'FILE_NOT_FOUND');
    });
  });
});
