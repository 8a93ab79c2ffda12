import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Transform, TransformCallback } from 'node:stream';
import ts from 'typescript';

const repo = path.join(__dirname, '../..');

/**
 * The command line as a user runs it: cli/*.ts transpiled to JavaScript in a
 * directory of its own beside bin/sonofs and package.json (the layout of the
 * package), run by node as its own process.
 */
export function buildCli(): { dir: string; bin: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-cli-build-'));
  const walk = (rel: string): string[] => fs.readdirSync(path.join(repo, rel), { withFileTypes: true })
    .flatMap(e => (e.isDirectory() ? walk(path.join(rel, e.name)) : e.name.endsWith('.ts') ? [ path.join(rel, e.name) ] : []));
  for (const file of walk('cli')) {
    const { outputText } = ts.transpileModule(fs.readFileSync(path.join(repo, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, inlineSourceMap: true },
      fileName: file,
    });
    fs.mkdirSync(path.join(dir, path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file.replace(/\.ts$/, '.js')), outputText);
  }
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.copyFileSync(path.join(repo, 'bin/sonofs'), path.join(dir, 'bin/sonofs'));
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(dir, 'package.json'));
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return { dir, bin: path.join(dir, 'bin/sonofs'), remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  done: Promise<CliRun>;
}

/** The environment of the tests, without what egg-bin, npm or the tester's shell set for sonofs. */
export function cliEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^(NODE_OPTIONS|EGG_.*|NODE_ENV|SONOFS_(URL|TOKEN|PREFIX|TUS_PATH)|XDG_CONFIG_HOME)$|^npm_/i.test(key)) delete env[key];
  }
  for (const [ k, v ] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

/** Starts `sonofs ...args`; `input` is written to its standard input (which is closed either way). */
export function startCli(bin: string, args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string; input?: Buffer } = {}): Running {
  const child = spawn(process.execPath, [ bin, ...args ], { env, cwd: opts.cwd, stdio: [ 'pipe', 'pipe', 'pipe' ] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', d => { stdout += d; });
  child.stderr!.on('data', d => { stderr += d; });
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(opts.input);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Delays what passes through to `bytesPerSecond`. */
class Throttle extends Transform {
  private readonly started = Date.now();
  private sent = 0;

  constructor(private readonly bytesPerSecond: number) {
    super();
  }

  _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.sent += chunk.length;
    const due = this.started + (this.sent / this.bytesPerSecond) * 1000;
    setTimeout(() => cb(null, chunk), Math.max(0, due - Date.now()));
  }
}

/**
 * A TCP proxy in front of the app that counts the bytes going each way
 * (request bytes: what a client really sent; response bytes: what it really
 * received) and can slow requests down, so that a test can interrupt an
 * upload half way. Connections are counted from `reset()` on.
 */
export class CountingProxy {
  /** client → server bytes */
  up = 0;
  /** server → client bytes */
  down = 0;
  rate: number | undefined;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: number) {
    this.server = net.createServer(client => {
      const upstream = net.connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const up = this.rate ? client.pipe(new Throttle(this.rate)) : client;
      up.on('data', (d: Buffer) => { this.up += d.length; });
      up.pipe(upstream);
      upstream.on('data', (d: Buffer) => { this.down += d.length; });
      upstream.pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>(r => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  /** connections open now (a closed client's bytes still in the socket buffers keep its pair open) */
  get open(): number {
    return this.sockets.size;
  }

  /** Drops every open connection, as a network that goes away does. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  reset(rate?: number): void {
    this.up = 0;
    this.down = 0;
    this.rate = rate;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise(r => this.server.close(r));
  }
}

/** Resolves once `check` holds, polling; rejects after `ms`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 20));
  }
}
