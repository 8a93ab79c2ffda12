import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from './http';
import { until } from './until';

const repo = path.join(__dirname, '../..');

/** Compiles the plugin and the demo into `dir` (scripts/build.js), as `npm start` runs them. */
export function buildDemo(dir: string): void {
  execFileSync(process.execPath, [ path.join(repo, 'scripts/build.js'), dir ], { stdio: 'ignore' });
}

/** pids of every process of the demo titled `title` (master, agent, workers, egg-scripts), from ps. */
export function demoPids(title: string): number[] {
  const out = execFileSync('ps', [ '-eo', 'pid=,args=' ]).toString();
  // titles end in "-end" so that one is never a prefix of another
  return out.split('\n').filter(l => l.includes(title)).map(l => Number(l.trim().split(/\s+/)[0])).filter(pid => pid !== process.pid);
}

export interface Demo {
  port: number;
  base: string;
  title: string;
  child: ChildProcess;
  output(): string;
  /** resolves with the exit code (or signal) of scripts/start.js */
  exited: Promise<number | string>;
  /** SIGTERM, as `egg-scripts stop` sends; resolves once every process is gone */
  stop(): Promise<void>;
  /** SIGKILL to every process of the demo at once, as a machine that dies */
  kill9(): Promise<void>;
}

/**
 * The demo built in `build`, started with scripts/start.js (egg-scripts in the
 * foreground, production mode) on a free port with `env` on top of ours.
 * `wait: false` returns at once (for a start expected to fail).
 */
export async function startDemo(build: string, home: string, env: Record<string, string>, opts: { wait?: boolean } = {}): Promise<Demo> {
  // egg's master picks the port of its agent's cluster-client (and we the HTTP port) as any free
  // port; demos started side by side can pick one another took meanwhile: such a start is tried again
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDemoOnce(build, home, env, opts);
    } catch (err) {
      if (attempt >= 3 || !/is occupied by other|EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

async function startDemoOnce(build: string, home: string, env: Record<string, string>, opts: { wait?: boolean }): Promise<Demo> {
  const port = await freePort();
  const title = `sonofs-ct-${port}-end`;
  let out = '';
  const child = spawn(process.execPath, [ path.join(repo, 'scripts/start.js') ], {
    env: {
      ...process.env, PORT: String(port), EGG_WORKERS: '1', EGG_TITLE: title, SONOFS_BUILD_DIR: build, SONOFS_EXTENT_MIB: '4', HOME: home,
      SONOFS_LOG_DIR: path.join(home, `logs-${port}`),
      // egg-bin's ts-node hooks must not leak into the production processes
      NODE_OPTIONS: '', EGG_TYPESCRIPT: '',
      ...env,
    },
    stdio: [ 'ignore', 'pipe', 'pipe' ],
  });
  child.stdout!.on('data', d => (out += d));
  child.stderr!.on('data', d => (out += d));
  const exited = new Promise<number | string>(resolve => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const gone = () => until(`every process of ${title} to exit`, () => demoPids(title).length === 0, 30_000, 100);
  const demo: Demo = {
    port, base: `http://127.0.0.1:${port}`, title, child, exited, output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await gone();
    },
    async kill9() {
      for (const pid of demoPids(title)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      await gone();
    },
  };
  if (opts.wait !== false) {
    await Promise.race([
      until(`${title} to start`, () => out.includes('egg started on'), 90_000, 100),
      exited.then(code => { throw new Error(`${title} exited (${code}) before it started`); }),
    ]).catch(async err => {
      // nothing of a failed start may outlive it (an agent left behind keeps logging its errors)
      await demo.kill9().catch(() => undefined);
      throw new Error(`${err.message}\n${out.slice(-3000)}`);
    });
  }
  return demo;
}
