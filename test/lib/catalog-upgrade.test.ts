import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { LmdbCatalog, catalogDir, openStandalone } from '../../lib';
import { rebuildDir } from '../../lib/catalog/lmdb-swap';
import { BOOT, Held, expectHeld, options, writeFormat1Store } from '../fixtures/catalog-v1/format1-store';
import { LmdbCatalogV1 } from '../fixtures/catalog-v1/lmdb-catalog-v1';

const CRASHER = path.join(__dirname, '..', 'fixtures', 'scripts', 'catalog-rebuild-crash.ts');

describe('lib: catalog upgrade cut short', () => {
  let root: string;
  let node: Awaited<ReturnType<typeof openStandalone>> | undefined;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-upgrade-'));
  });

  afterEach(async () => {
    await node?.close();
    node = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** Runs a start that dies by SIGKILL part way through its rebuild (see the script). */
  function crashingRebuild(...args: string[]) {
    const r = spawnSync(process.execPath, [ '-r', 'ts-node/register/transpile-only', CRASHER, root, BOOT, ...args ], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, 'SIGKILL', `the rebuild should die by SIGKILL: ${r.stdout} ${r.stderr}`);
  }

  /** The keys of the catalog in `dir` by their first letter, with how many of each. */
  async function keysIn(dir: string): Promise<Record<string, number>> {
    const probe = open<Buffer, Buffer>({ path: dir, keyEncoding: 'binary', encoding: 'binary', readOnly: true });
    try {
      const kinds: Record<string, number> = {};
      for (const key of probe.getKeys()) {
        const kind = String.fromCharCode(key[0]);
        kinds[kind] = (kinds[kind] ?? 0) + 1;
      }
      return kinds;
    } finally {
      await probe.close();
    }
  }

  /** The format-1 catalog is in place and whole: the version before the upgrade still runs on it. */
  async function expectFormat1Whole(held: Held) {
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /in format 1, older than this version's 2/);
    const v1 = new LmdbCatalogV1(catalogDir(root), { bootId: BOOT });
    try {
      for (const [ user, list ] of held.lists) assert.deepEqual(await v1.listUserFiles(user, 1000), list, `${user}'s files in format 1`);
    } finally {
      await v1.close({ last: true });
    }
  }

  it('a kill inside a transaction of the rebuild leaves the old catalog whole; the next start replaces it', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('inside', String(Math.floor(held.records / 2)));
    await expectFormat1Whole(held);
    // beside it, the new one holds its format, its guard against format 1 ('alloc') and the rebuild's marker:
    // the batch never committed
    assert.deepEqual(await keysIn(rebuildDir(catalogDir(root))), { a: 1, f: 1, r: 1 });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, true);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
    assert.equal(fs.existsSync(rebuildDir(catalogDir(root))), false);
  });

  it('a kill between two transactions of the rebuild leaves the old catalog whole; the next start replaces it', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('between', '3', '5');
    await expectFormat1Whole(held);
    // three batches of five records committed beside it: a partial catalog, which says so
    const left = await keysIn(rebuildDir(catalogDir(root)));
    assert.equal(left.r, 1);
    assert(left.b > 0 && left.b < held.blobs.size + held.gone.length, `blobs left: ${left.b}`);

    node = await openStandalone(options(root, { replayBatch: 5 }));
    assert.equal(node.recovery.outdatedFormat, true);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    // an upgrade of a catalog closed cleanly reads no data, cut short or not
    assert.equal(node.recovery.verifiedData, false);
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
    assert.equal((await keysIn(catalogDir(root))).r, undefined);
    await node.close();

    node = await openStandalone(options(root));
    assert.equal(node.recovery.unfinishedRebuild, false);
    assert.equal(node.recovery.mode, 'reconcile');
    await expectHeld(node, held);
  });

  it('a kill as the new catalog is swapped in leaves the old one or the new one, whole', async () => {
    const held = await writeFormat1Store(root);
    // just before the rename of its data file: the old one
    crashingRebuild('swap', 'before');
    await expectFormat1Whole(held);
    // just after: the new one, which the next start keeps
    crashingRebuild('swap', 'after');
    assert.equal((await keysIn(catalogDir(root))).r, undefined);
    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.equal(node.recovery.unfinishedRebuild, false);
    assert.equal(node.recovery.mode, 'reconcile');
    await expectHeld(node, held);
    assert.equal(fs.existsSync(rebuildDir(catalogDir(root))), false);
  });

  it('an upgrade of a catalog directory that is a symbolic link leaves the link, and the new catalog where it points', async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-meta-'));
    try {
      const real = path.join(elsewhere, 'meta');
      fs.mkdirSync(real);
      fs.symlinkSync(real, catalogDir(root));
      const held = await writeFormat1Store(root);
      node = await openStandalone(options(root));
      assert.equal(node.recovery.outdatedFormat, true);
      await expectHeld(node, held);
      assert.equal(fs.readlinkSync(catalogDir(root)), real);
      assert.deepEqual(fs.readdirSync(real).sort(), [ 'data.mdb', 'lock.mdb' ]);
    } finally {
      await node?.close();
      node = undefined;
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  /** A process that has the catalog open as a worker of the version before did: after a read, or only opened. */
  function holdOpen(read: boolean) {
    const lmdb = require.resolve('lmdb');
    const child = spawn(process.execPath, [ '-e',
      `const db = require(${JSON.stringify(lmdb)}).open({ path: ${JSON.stringify(catalogDir(root))}, noSync: true, compression: false });` +
      `${read ? 'db.get(["seq"]);' : ''} console.log("open"); setInterval(() => {}, 1000);` ], { stdio: [ 'ignore', 'pipe', 'inherit' ] });
    const ready = new Promise(resolve => child.stdout!.once('data', resolve));
    const stop = async () => {
      child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await new Promise(resolve => child.once('exit', resolve));
    };
    return { pid: child.pid!, ready, stop };
  }

  it('refuses to replace a catalog that live processes still have open, naming them, and changes nothing', async () => {
    const held = await writeFormat1Store(root);
    const data = path.join(catalogDir(root), 'data.mdb');
    const before = fs.readFileSync(data);
    const reader = holdOpen(true);
    const idle = holdOpen(false);
    try {
      await Promise.all([ reader.ready, idle.ready ]);
      const pids = [ reader.pid, idle.pid ].sort((a, b) => a - b).join(', ');
      await assert.rejects(openStandalone(options(root)), { message: new RegExp(`must be rebuilt, but live processes still have it open \\(pid ${pids}\\): stop them`) });
      assert(fs.readFileSync(data).equals(before), 'the catalog changed');
    } finally {
      await reader.stop();
      await idle.stop();
    }
    await expectFormat1Whole(held);
    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, true);
    await expectHeld(node, held);
    await node.close();
    node = undefined;

    // a catalog kept as it is may stay open: an agent restarted while its workers run
    const worker = holdOpen(true);
    try {
      await worker.ready;
      node = await openStandalone(options(root));
      assert.equal(node.recovery.mode, 'reconcile');
    } finally {
      await worker.stop();
    }
  });

  it('replaces a catalog that a rebuild in place (before it was built beside) left partial', async () => {
    const held = await writeFormat1Store(root);
    fs.rmSync(catalogDir(root), { recursive: true });
    const partial = new LmdbCatalog(catalogDir(root), { bootId: BOOT });
    await partial.replay([], { rebuild: { verifyData: false, last: false } });
    await partial.close({ last: true });
    node = await openStandalone(options(root));
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.verifiedData, false);
    await expectHeld(node, held);
  });

  it('a rebuild after an OS crash cut short by a kill reads every blob\'s data again', async () => {
    const held = await writeFormat1Store(root);
    fs.writeFileSync(`${catalogDir(root)}.unsynced`, 'boot-0\n');
    crashingRebuild('between', '2', '5');
    node = await openStandalone(options(root));
    assert.equal(node.recovery.tornByOsCrash, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.verifiedData, true);
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
  });
});
