import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mm, { MockApplication } from 'egg-mock';
import { freePort } from './http';

/** The fixture app (test/fixtures/apps/sonofs-app) running on a store root of its own. */
export interface TestApp {
  app: MockApplication;
  root: string;
  /** http://127.0.0.1:<port> for real clients */
  base: string;
  /** closes the app (and its server) and removes the root */
  close(): Promise<void>;
}

/**
 * A fixture app (default test/fixtures/apps/sonofs-app) in this process (mm.app), listening on a free port too, so
 * both supertest (`app.httpRequest()`) and real clients can reach it.
 */
export async function startInProcess(name: string, baseDir = 'apps/sonofs-app'): Promise<TestApp> {
  // egg-mock's in-process messenger drops agent.sendTo(pid); this routes
  // every message in-process for the suite (see docs/egg-toolchain.md)
  process.env.SENDMESSAGE_ONE_PROCESS = 'true';
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `sonofs-${name}-`));
  process.env.SONOFS_TEST_ROOT = root;
  const app = mm.app({ baseDir, cache: false });
  await app.ready();
  const server: http.Server = app.listen(0);
  return {
    app, root, base: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    async close() {
      server.close();
      await app.close();
      delete process.env.SENDMESSAGE_ONE_PROCESS;
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * A fixture app (default test/fixtures/apps/sonofs-app) as a cluster (master,
 * agent, `workers` app workers) on a free port, or on `port`. Pass `root` to
 * start again on the data of an earlier cluster; the root is then the caller's to remove.
 */
export async function startCluster(name: string, opts: { root?: string; workers?: number; port?: number; baseDir?: string } = {}): Promise<TestApp> {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), `sonofs-${name}-`));
  process.env.SONOFS_TEST_ROOT = root;
  const port = opts.port ?? await freePort();
  const app = mm.cluster({ baseDir: opts.baseDir ?? 'apps/sonofs-app', workers: opts.workers ?? 2, coverage: false, port, cache: false } as any);
  await app.ready();
  return {
    app, root, base: `http://127.0.0.1:${port}`,
    async close() {
      await app.close();
      if (!opts.root) fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
