import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { LmdbCatalog, catalogDir, openStandalone } from '../../lib';
import { BOOT, expectHeld, options, writeFormat1Store } from '../fixtures/catalog-v1/format1-store';

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

  /** The keys of the catalog as a kill left it, by their first letter, with how many of each. */
  async function keysLeft(): Promise<Record<string, number>> {
    const probe = open<Buffer, Buffer>({ path: catalogDir(root), keyEncoding: 'binary', encoding: 'binary', readOnly: true });
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

  it('a kill inside a transaction of the rebuild leaves a catalog that the next start rebuilds whole', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('inside', String(Math.floor(held.records / 2)));
    // the old catalog is gone, the new one holds its format and the rebuild's marker: the batch never committed
    assert.deepEqual(await keysLeft(), { f: 1, r: 1 });

    node = await openStandalone(options(root));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
  });

  it('a kill between two transactions of the rebuild leaves a catalog that the next start drops and rebuilds whole', async () => {
    const held = await writeFormat1Store(root);
    crashingRebuild('between', '3', '5');
    // three batches of five records committed: a partial catalog, which says so
    const left = await keysLeft();
    assert.equal(left.r, 1);
    assert(left.b > 0 && left.b < held.blobs.size + held.gone.length, `blobs left: ${left.b}`);
    assert.throws(() => new LmdbCatalog(catalogDir(root), { bootId: BOOT }), /partly rebuilt from the bundles; the leader must rebuild it first/);

    node = await openStandalone(options(root, { replayBatch: 5 }));
    assert.equal(node.recovery.outdatedFormat, false);
    assert.equal(node.recovery.unfinishedRebuild, true);
    assert.equal(node.recovery.mode, 'rebuild');
    // the rebuild cut short read no data (a clean upgrade): neither does its second run
    assert.equal(node.recovery.verifiedData, false);
    assert.equal(node.recovery.applied, held.records);
    await expectHeld(node, held);
    assert.equal((await keysLeft()).r, undefined);
    await node.close();

    node = await openStandalone(options(root));
    assert.equal(node.recovery.unfinishedRebuild, false);
    assert.equal(node.recovery.mode, 'reconcile');
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
