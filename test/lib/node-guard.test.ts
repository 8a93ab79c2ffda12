import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NodeOptions, openLeader, openStandalone } from '../../lib';
import { lockRoot } from '../../lib/bundle/root-lock';
import { until } from '../support/until';

const MiB = 1 << 20;
const HOLDER = path.join(__dirname, '..', 'fixtures', 'scripts', 'hold-root.ts');
/** this process's pid namespace: a lock written by hand as if by a process beside it */
const PID_NS = fs.existsSync('/proc/self/ns/pid') ? fs.readlinkSync('/proc/self/ns/pid') : undefined;

function options(root: string, over: Partial<NodeOptions> = {}): NodeOptions {
  return { root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true, ...over };
}

/** hold-root.ts in a child process (as `uid`, if given); resolves with its first line of output. */
function holdRoot(root: string, uid?: number, wrap: string[] = []): { child: ChildProcess; said: Promise<string> } {
  const [ command, ...args ] = [ ...wrap, process.execPath, '-r', 'ts-node/register/transpile-only', HOLDER, root ];
  const child = spawn(command, args, {
    stdio: [ 'ignore', 'pipe', 'pipe' ], ...(uid === undefined ? {} : { uid, gid: uid, env: { ...process.env, HOME: os.tmpdir() } }),
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', d => (err += d));
  const said = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', d => {
      out += d;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.on('exit', code => reject(new Error(`holder exited ${code} before saying anything: ${err}`)));
  });
  return { child, said };
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise(r => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

describe('lib: what a node refuses at start', () => {
  let root: string;
  const children: ChildProcess[] = [];

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-guard-'));
  });

  afterEach(async () => {
    await Promise.all(children.splice(0).map(killed));
    fs.rmSync(root, { recursive: true, force: true });
  });

  describe('group and server are fixed for the life of a store', () => {
    it('refuses another group or server, saying what to set, and changes nothing', async () => {
      const node = await openStandalone(options(root));
      const r = await node.store.upload(Readable.from([ Buffer.from('pinned') ]), { user: 'u', filename: 'p.txt' });
      await node.close();
      const layout = fs.readFileSync(path.join(root, 'layout.json'), 'utf8');
      await assert.rejects(openStandalone(options(root, { group: 9 })),
        /created with group 1; config\.sonofs\.group is 9\. Set config\.sonofs\.group to 1/);
      await assert.rejects(openStandalone(options(root, { server: 0 })),
        /created with server 2; config\.sonofs\.server is 0\. Set config\.sonofs\.server to 2/);
      assert.equal(fs.readFileSync(path.join(root, 'layout.json'), 'utf8'), layout);
      // the refused starts left the root to its own identity: the file is still readable
      const again = await openStandalone(options(root));
      assert.equal((await again.store.getFile(r.fileId)).buffer.toString(), 'pinned');
      await again.close();
    });

    /** Rewrites layout.json as versions before the identity pin wrote it. */
    function olderLayout() {
      const file = path.join(root, 'layout.json');
      const { group, server, ...older } = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert.deepEqual([ group, server ], [ 1, 2 ]);
      fs.writeFileSync(file, JSON.stringify(older));
    }

    it('takes the identity of a store whose layout.json predates the pin from the ids it handed out', async () => {
      const node = await openStandalone(options(root));
      await node.store.upload(Readable.from([ Buffer.from('old store') ]), { user: 'u', filename: 'o.txt' });
      await node.close();
      olderLayout();
      await assert.rejects(openLeader(options(root, { group: 0, server: 0 })),
        /created with group 1; config\.sonofs\.group is 0\. Set config\.sonofs\.group to 1/);
      const again = await openLeader(options(root));
      assert.deepEqual(again.recovery.adoptedLayout, [ 'group', 'server' ]);
      await again.catalog.close({ last: true });
      again.lock.release();
      await assert.rejects(openLeader(options(root, { server: 3 })), /created with server 2/);
    });

    it('pins the configured identity of an older store that holds no file yet', async () => {
      await (await openStandalone(options(root))).close();
      olderLayout();
      const node = await openLeader(options(root, { group: 5, server: 6 }));
      assert.deepEqual(node.recovery.adoptedLayout, [ 'group', 'server' ]);
      await node.catalog.close({ last: true });
      node.lock.release();
      await assert.rejects(openLeader(options(root)), /created with group 5/);
    });
  });

  describe('one node per root', () => {
    it('refuses a second node on a root in use, naming the root and the holder', async () => {
      const holder = holdRoot(root);
      children.push(holder.child);
      assert.equal(await holder.said, 'ready');
      const host = os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await assert.rejects(openLeader(options(root)),
        new RegExp(`config\\.sonofs\\.root ${root} is in use by pid ${holder.child.pid} on host ${host}`));
    });

    it('takes over the lock of a holder killed by SIGKILL', async () => {
      const holder = holdRoot(root);
      children.push(holder.child);
      assert.equal(await holder.said, 'ready');
      await killed(holder.child);
      const node = await openStandalone(options(root));
      const lock = JSON.parse(fs.readFileSync(path.join(root, 'sonofs.lock'), 'utf8'));
      assert.equal(lock.pid, process.pid);
      await node.close();
      assert.equal(fs.existsSync(path.join(root, 'sonofs.lock')), false, 'a clean stop releases the lock');
    });

    it('takes over the lock of a holder that is a zombie (killed, not yet reaped, as under an init that reaps late)', async function() {
      if (!fs.existsSync('/proc/self/stat')) this.skip();
      // sh starts a child that exits a moment later, when sh has become `sleep`, which never reaps it
      const parent = spawn('sh', [ '-c', 'sleep 0.3 & echo $!; exec sleep 30' ], { stdio: [ 'ignore', 'pipe', 'ignore' ] });
      children.push(parent);
      const zombie = Number(await new Promise<string>(resolve => parent.stdout!.once('data', d => resolve(String(d).trim()))));
      const state = () => { const stat = fs.readFileSync(`/proc/${zombie}/stat`, 'utf8'); return stat.charAt(stat.lastIndexOf(')') + 2); };
      await until('the child to be a zombie', () => state() === 'Z', 5000, 20);
      process.kill(zombie, 0); // the pid still answers a signal check
      fs.writeFileSync(path.join(root, 'sonofs.lock'), JSON.stringify({ pid: zombie, host: os.hostname(), pidNs: PID_NS, since: 'then' }));
      const node = await openLeader(options(root));
      assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'sonofs.lock'), 'utf8')).pid, process.pid);
      await node.catalog.close({ last: true });
      node.lock.release();
    });

    it('takes over a lock whose pid now belongs to another process, or that was left by another boot', async () => {
      const file = path.join(root, 'sonofs.lock');
      const reused = { pid: 1, host: os.hostname(), pidNs: PID_NS, startTime: -1, since: 'then' }; // pid 1 lives, but started at another time
      const otherBoot = { pid: 1, host: os.hostname(), pidNs: PID_NS, bootId: 'a-boot-long-ago', since: 'then' };
      for (const stale of [ reused, otherBoot ]) {
        fs.writeFileSync(file, JSON.stringify(stale));
        const node = await openLeader(options(root));
        assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
        await node.catalog.close({ last: true });
        node.lock.release();
      }
    });

    it('judges a holder on another host by its heartbeat: refused while it beats, taken over once it stops', async () => {
      const file = path.join(root, 'sonofs.lock');
      fs.writeFileSync(file, JSON.stringify({ pid: 4242, host: 'elsewhere', since: 'then' }));
      const beat = setInterval(() => fs.utimesSync(file, new Date(), new Date()), 100);
      try {
        await assert.rejects(lockRoot(root, { staleMs: 1000 }), /in use by pid 4242 on host elsewhere .*another host or container and still touches/);
      } finally {
        clearInterval(beat);
      }
      const lock = await lockRoot(root, { staleMs: 1000 });
      assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
      lock.release();
    });

    it('judges a holder in another pid namespace (a container on the same host) by its heartbeat', async function() {
      const unshare = [ 'unshare', '--pid', '--fork', '--kill-child', '--mount-proc' ];
      if (spawnSync(unshare[0], [ ...unshare.slice(1), 'true' ]).status !== 0) this.skip();
      const holder = holdRoot(root, undefined, unshare);
      children.push(holder.child);
      assert.equal(await holder.said, 'ready');
      await assert.rejects(lockRoot(root, { staleMs: 2500 }), /another host or container and still touches/);
      await killed(holder.child);
      const lock = await lockRoot(root, { staleMs: 2500 });
      assert.equal(JSON.parse(fs.readFileSync(path.join(root, 'sonofs.lock'), 'utf8')).pid, process.pid);
      lock.release();
    });

    it('lets exactly one of two nodes starting at once take over a stale lock', async () => {
      const dead = spawnSync(process.execPath, [ '-e', 'process.stdout.write(String(process.pid))' ], { encoding: 'utf8' });
      for (let round = 0; round < 3; round++) {
        fs.writeFileSync(path.join(root, 'sonofs.lock'), JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), pidNs: PID_NS, since: 'then' }));
        const pair = [ holdRoot(root), holdRoot(root) ];
        children.push(...pair.map(h => h.child));
        const said = await Promise.all(pair.map(h => h.said.catch((err: Error) => `exited: ${err.message}`)));
        assert.equal(said.filter(line => line === 'ready').length, 1, said.join(' | '));
        assert.match(said.find(line => line !== 'ready')!, /is in use by pid \d+/);
        await Promise.all(children.splice(0).map(killed));
      }
    });

    it('a released handle never removes a lock taken again since', async () => {
      const first = await lockRoot(root);
      const second = await lockRoot(root); // this process again: a test reopening its store
      first.release();
      assert.ok(fs.existsSync(path.join(root, 'sonofs.lock')), 'the second still holds it');
      second.release();
      assert.equal(fs.existsSync(path.join(root, 'sonofs.lock')), false);
    });
  });

  describe('a root this process cannot write', () => {
    it('says so for a directory of another user, naming the root and the uid, and creates nothing', async function() {
      // The user must reach the code: a checkout under a private (0700) directory is out of its reach.
      const reach = [ process.execPath, '-e', `require.resolve('ts-node/register/transpile-only'); require('fs').accessSync(${JSON.stringify(HOLDER)})` ];
      if (process.getuid?.() !== 0 || spawnSync(reach[0], reach.slice(1), { uid: 65534, gid: 65534 }).status !== 0) this.skip();
      fs.chmodSync(root, 0o755); // nobody can look in, not write
      const store = path.join(root, 'store');
      fs.mkdirSync(store, { mode: 0o755 });
      const holder = holdRoot(store, 65534);
      children.push(holder.child);
      assert.equal(await holder.said, `error: [egg-sonofs] config.sonofs.root ${store} is not writable by uid 65534 (EACCES)`);
      assert.deepEqual(fs.readdirSync(store), []);
    });

    it('says so for a read-only mount, and creates nothing', async function() {
      const store = path.join(root, 'store');
      fs.mkdirSync(store);
      // a read-only bind mount in a mount namespace of the child's own, gone with it
      const script = `mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && exec "$0" -r ts-node/register/transpile-only "$2" "$1"`;
      const probe = spawnSync('unshare', [ '--mount', 'sh', '-c', 'mount --bind / /mnt 2>/dev/null || mount -t tmpfs none /mnt' ]);
      if (probe.status !== 0) this.skip(); // no right to mount here
      const child = spawnSync('unshare', [ '--mount', 'sh', '-c', script, process.execPath, store, HOLDER ], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(child.stdout.trim(), `error: [egg-sonofs] config.sonofs.root ${store} is not writable by uid ${process.getuid?.()} (EROFS)`, child.stderr);
      assert.deepEqual(fs.readdirSync(store), []);
    });
  });
});
