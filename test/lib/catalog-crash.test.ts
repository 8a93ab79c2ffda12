import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { openStandalone, NodeOptions, LmdbCatalog, catalogDir, decodeFileId } from '../../lib';

const MiB = 1 << 20;
const WRITER = path.join(__dirname, '..', 'fixtures', 'scripts', 'catalog-writer.ts');

interface Stored { fileId: string; fileHash: string; name: string; content: string }

function options(root: string, bootId: string): NodeOptions {
  return { root, group: 1, server: 2, bundleSize: 8 * MiB, extentSize: 1 * MiB, maxFileSize: 64 * MiB, fsync: true, bootId };
}

/** Runs the writer in a child process that dies by SIGKILL with its catalog open; returns what it acknowledged. */
function crashingWriter(root: string, bootId: string): { kept: Stored[]; removed: Stored } {
  const r = spawnSync(process.execPath, [ '-r', 'ts-node/register/transpile-only', WRITER, root, bootId ], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, 'SIGKILL', `the writer should die by SIGKILL: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('lib: the unsynced catalog and crashes', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>> | undefined;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-crash-'));
  });

  afterEach(async () => {
    await node?.close();
    node = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function expectAll(stored: { kept: Stored[]; removed: Stored }) {
    const files = await node!.store.listUserFiles('u', 100);
    assert.deepEqual(files.map(f => f.name).sort(), stored.kept.map(s => s.name).sort());
    for (const s of stored.kept) assert.equal((await node!.store.getFile(s.fileId)).buffer.toString(), s.content);
    await assert.rejects(node!.store.getFile(stored.removed.fileId), { code: 'FILE_NOT_FOUND' });
  }

  it('a process killed with the catalog open loses nothing, and the same boot keeps the catalog', async () => {
    const stored = crashingWriter(root, 'boot-1');
    assert.equal(fs.readFileSync(`${catalogDir(root)}.unsynced`, 'utf8').trim(), 'boot-1');
    node = await openStandalone(options(root, 'boot-1'));
    assert.equal(node.recovery.tornByOsCrash, false);
    assert.notEqual(node.recovery.mode, 'rebuild');
    await expectAll(stored);
  });

  it('after the system went down with the catalog open, a torn catalog is rebuilt from the bundles', async () => {
    const stored = crashingWriter(root, 'boot-1');
    // What an OS crash may leave of unsynced LMDB pages: garbage.
    const data = path.join(catalogDir(root), 'data.mdb');
    const size = fs.statSync(data).size;
    const fd = fs.openSync(data, 'r+');
    fs.writeSync(fd, Buffer.alloc(size, 0xa5), 0, size, 0);
    fs.closeSync(fd);

    // A worker must not open it before the leader rebuilt it.
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: 'boot-2' }), /was open when the system went down/);

    node = await openStandalone(options(root, 'boot-2'));
    assert.equal(node.recovery.tornByOsCrash, true);
    assert.equal(node.recovery.mode, 'rebuild');
    await expectAll(stored);
    assert.equal(fs.readFileSync(`${catalogDir(root)}.unsynced`, 'utf8').trim(), 'boot-2');
    // and it goes on: new uploads land in a bundle nobody wrote to before
    const more = await node.store.upload(Readable.from([ Buffer.from('after the reboot') ]), { user: 'u', filename: 'new.txt' });
    const usedBefore = Math.max(...stored.kept.map(s => decodeFileId(s.fileId).bundle));
    assert.ok(decodeFileId(more.fileId).bundle > usedBefore);
    assert.equal((await node.store.getFile(more.fileId)).buffer.toString(), 'after the reboot');
  });

  it('a catalog directory that is a symbolic link (meta/ on another disk) stays one when a torn catalog is rebuilt', async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-meta-'));
    try {
      const real = path.join(elsewhere, 'meta');
      fs.mkdirSync(real);
      fs.symlinkSync(real, catalogDir(root));
      const stored = crashingWriter(root, 'boot-1');
      assert.equal(fs.existsSync(path.join(real, 'data.mdb')), true);
      const data = path.join(real, 'data.mdb');
      const size = fs.statSync(data).size;
      const fd = fs.openSync(data, 'r+');
      fs.writeSync(fd, Buffer.alloc(size, 0xa5), 0, size, 0);
      fs.closeSync(fd);

      node = await openStandalone(options(root, 'boot-2'));
      assert.equal(node.recovery.tornByOsCrash, true);
      assert.equal(node.recovery.mode, 'rebuild');
      await expectAll(stored);
      // the catalog was rebuilt where the link points, not in a new directory in its place
      assert.equal(fs.lstatSync(catalogDir(root)).isSymbolicLink(), true);
      assert.equal(fs.readlinkSync(catalogDir(root)), real);
      assert.deepEqual(fs.readdirSync(real).sort(), [ 'data.mdb', 'lock.mdb' ]);
    } finally {
      await node?.close();
      node = undefined;
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it('the leader leaves the marker while another live process still has the catalog open', async () => {
    node = await openStandalone(options(root, 'boot-1'));
    await node.store.upload(Readable.from([ Buffer.from('x') ]), { user: 'u', filename: 'x.txt' });
    // a worker that outlives the agent: it holds the environment open (LMDB's reader table)
    const lmdb = require.resolve('lmdb');
    const worker = spawn(process.execPath, [ '-e',
      `const db = require(${JSON.stringify(lmdb)}).open({ path: ${JSON.stringify(catalogDir(root))}, noSync: true, compression: false });` +
      'db.get(["seq"]); console.log("open"); setInterval(() => {}, 1000);' ], { stdio: [ 'ignore', 'pipe', 'inherit' ] });
    try {
      await new Promise(resolve => worker.stdout!.once('data', resolve));
      await node.close();
      node = undefined;
      assert.equal(fs.existsSync(`${catalogDir(root)}.unsynced`), true, 'the marker went while a worker could still write');
    } finally {
      worker.kill('SIGKILL');
      await new Promise(resolve => worker.once('exit', resolve));
    }
    node = await openStandalone(options(root, 'boot-1'));
    await node.close();
    node = undefined;
    assert.equal(fs.existsSync(`${catalogDir(root)}.unsynced`), false);
  });

  it('a clean shutdown syncs the catalog: the next boot keeps it', async () => {
    node = await openStandalone(options(root, 'boot-1'));
    const r = await node.store.upload(Readable.from([ Buffer.from('clean') ]), { user: 'u', filename: 'clean.txt' });
    await node.close();
    node = undefined;
    assert.equal(fs.existsSync(`${catalogDir(root)}.unsynced`), false);

    node = await openStandalone(options(root, 'boot-2'));
    assert.equal(node.recovery.tornByOsCrash, false);
    assert.notEqual(node.recovery.mode, 'rebuild');
    assert.equal((await node.store.getFile(r.fileId)).buffer.toString(), 'clean');
  });
});
