import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from './http';

const repo = path.join(__dirname, '../..');

/** Builds the plugin and the demo into `dir` (scripts/build.js), as `npm start` does into dist/. */
export function buildDemo(dir: string): void {
  execFileSync(process.execPath, [ path.join(repo, 'scripts/build.js'), dir ], { stdio: 'ignore' });
}

export interface RunningDemo {
  base: string;
  port: number;
  /** what the demo printed so far */
  output(): string;
  /** SIGTERM, and waits for the master to exit */
  stop(): Promise<void>;
}

/** The environment the demo runs with: egg-bin's ts-node hooks must not leak into the production processes. */
export function demoEnv(build: string, root: string, env: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...process.env, EGG_WORKERS: '2', SONOFS_ROOT: root, SONOFS_BUILD_DIR: build, SONOFS_LOG_DIR: path.join(root, '..', 'logs'),
    HOME: path.join(root, '..'), NODE_OPTIONS: '', EGG_TYPESCRIPT: '', ...env,
  };
}

async function until(what: string, fn: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

/** `npm start` of a build (scripts/start.js: egg-scripts in the foreground, production) on a free port. */
export async function startDemo(build: string, root: string, env: Record<string, string> = {}): Promise<RunningDemo> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [ path.join(repo, 'scripts/start.js') ], {
    env: demoEnv(build, root, { PORT: String(port), EGG_TITLE: `sonofs-demo-test-${port}`, ...env }),
    stdio: [ 'ignore', 'pipe', 'pipe' ],
  });
  let output = '';
  child.stdout!.on('data', d => (output += d));
  child.stderr!.on('data', d => (output += d));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  await until('the demo to start', () => output.includes('egg started on') || exited(), 90_000).catch(() => undefined);
  if (!output.includes('egg started on')) {
    if (!exited()) child.kill('SIGTERM');
    throw new Error(`the demo did not start:\n${output.slice(-3000)}`);
  }
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    output: () => output,
    async stop() {
      if (exited()) return;
      child.kill('SIGTERM');
      await until('the demo to stop', exited, 60_000).catch(() => child.kill('SIGKILL'));
    },
  };
}
