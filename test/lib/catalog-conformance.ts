import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Catalog, NotFoundError, ReplayRecord, UploadCommit, encodeFileId } from '../../lib';

/**
 * What every catalog backend must do, whatever it stores in: the same
 * answers, the same record writes, the same replay. Each backend's test file
 * calls this with a way to open a fresh catalog (and a second handle on the
 * same one, as another process or node would hold it).
 */
export interface CatalogUnderTest {
  catalog: Catalog;
  /** another handle on the same catalog */
  other(): Promise<Catalog>;
  done(): Promise<void>;
}

const sha1Of = (s: string) => createHash('sha1').update(s).digest('hex');
let offset = 0;

function commit(user: string, content: string, name = `${content}.bin`, time = Date.now()): UploadCommit {
  offset += 4096;
  const fileId = encodeFileId({ group: 1, server: 2, bundle: 0, offset, size: content.length, mimeCode: 1, cookie: randomBytes(4).readUInt32BE(0) });
  return { user, name, blob: { sha1: sha1Of(content), fileId, size: content.length, mime: 'application/octet-stream', time } };
}

/** Record writes as a bundle would take them: which kind, with which seq. */
function recorder() {
  const writes: Array<{ kind: string; seq: number }> = [];
  const w = (kind: string) => (seq: number) => { writes.push({ kind, seq }); };
  return { writes, blob: w('blob'), link: w('link'), one: w('op') };
}

export function catalogConformance(open: () => Promise<CatalogUnderTest>): void {
  let t: CatalogUnderTest;
  beforeEach(async () => { t = await open(); });
  afterEach(async () => { await t.done(); });

  it('is empty when new, and not once something was stored', async () => {
    assert.equal(await t.catalog.isEmpty(), true);
    assert.equal(await t.catalog.anyBlob(), undefined);
    const r = recorder();
    const c = commit('alice', 'a');
    await t.catalog.commitUpload(c, r.blob, r.link);
    assert.equal(await t.catalog.isEmpty(), false);
    assert.deepEqual(await t.catalog.anyBlob(), { ...c.blob, refs: 1 });
  });

  it('stores new content as a blob record, and the same content from another user as a link record to it', async () => {
    const r = recorder();
    const first = commit('alice', 'shared');
    const a = await t.catalog.commitUpload(first, r.blob, r.link);
    assert.equal(a.created, true);
    assert.deepEqual({ ...a.blob }, { ...first.blob, refs: 1 });
    assert.deepEqual(a.link, { user: 'alice', sha1: first.blob.sha1, name: 'shared.bin', at: first.blob.time, mtime: first.blob.time });
    const second = commit('bob', 'shared', 'mine.bin', first.blob.time + 5);
    const b = await t.catalog.commitUpload(second, r.blob, r.link);
    assert.equal(b.created, false);
    assert.equal(b.blob.fileId, first.blob.fileId, 'the existing content is kept');
    assert.equal(b.blob.refs, 2);
    assert.deepEqual(r.writes.map(w => w.kind), [ 'blob', 'link' ]);
    assert(r.writes[1].seq > r.writes[0].seq, 'seqs increase');
    assert.equal((await t.catalog.getBlob(first.blob.sha1))?.refs, 2);
    const bobs = await t.catalog.getUserFile('bob', first.blob.sha1);
    assert.deepEqual(bobs, { user: 'bob', sha1: first.blob.sha1, name: 'mine.bin', at: second.blob.time, mtime: second.blob.time, fileId: first.blob.fileId, size: 6, mime: 'application/octet-stream' });
  });

  it('takes a user\'s second upload of the same content as one file, newly dated, and a commit run again as its own', async () => {
    const r = recorder();
    const c = commit('alice', 'again');
    await t.catalog.commitUpload(c, r.blob, r.link);
    const again = await t.catalog.commitUpload(c, r.blob, r.link);
    assert.equal(again.created, true, 'the same file id: the commit already went through');
    assert.equal(r.writes.length, 1, 'and nothing is written again');
    const later = commit('alice', 'again', 'renamed-upload.bin', c.blob.time + 10);
    const up = await t.catalog.commitUpload(later, r.blob, r.link);
    assert.equal(up.created, false);
    assert.equal(up.blob.refs, 1, 'one user, one link');
    const list = await t.catalog.listUserFiles('alice', 10);
    assert.deepEqual(list.map(f => [ f.name, f.at ]), [ [ 'renamed-upload.bin', later.blob.time ] ]);
  });

  it('links a user to stored content (秒传) and refuses unknown content without writing', async () => {
    const r = recorder();
    await assert.rejects(t.catalog.link('bob', sha1Of('nothing'), 'x', r.one), (e: NotFoundError) => e.status === 404 && e.code === 'FILE_NOT_FOUND');
    await assert.rejects(t.catalog.link('bob', 'not a sha1', 'x', r.one), { status: 404 });
    assert.equal(r.writes.length, 0);
    const c = commit('alice', 'known');
    await t.catalog.commitUpload(c, r.blob, r.link);
    const f = await t.catalog.link('bob', c.blob.sha1, 'instant.bin', r.one);
    assert.equal(f.fileId, c.blob.fileId);
    assert.equal(f.name, 'instant.bin');
    assert.equal((await t.catalog.getBlob(c.blob.sha1))?.refs, 2);
    assert.deepEqual(r.writes.map(w => w.kind), [ 'blob', 'op' ]);
  });

  it('renames a link, keeping its place in the list', async () => {
    const r = recorder();
    const t0 = Date.now() - 10_000;
    for (const [ i, name ] of [ 'one', 'two', 'three' ].entries()) await t.catalog.commitUpload(commit('alice', name, `${name}.txt`, t0 + i), r.blob, r.link);
    await assert.rejects(t.catalog.rename('alice', sha1Of('absent'), 'x', r.one), { status: 404, code: 'FILE_NOT_FOUND' });
    await assert.rejects(t.catalog.rename('bob', sha1Of('one'), 'x', r.one), { status: 404 }, 'another user\'s file');
    const f = await t.catalog.rename('alice', sha1Of('one'), '一.txt', r.one);
    assert.equal(f.name, '一.txt');
    assert.equal(f.at, t0);
    assert(f.mtime >= t0 + 10_000 - 1000, 'mtime is the rename\'s');
    assert.deepEqual((await t.catalog.listUserFiles('alice', 10)).map(x => x.name), [ 'three.txt', 'two.txt', '一.txt' ]);
    assert.equal(r.writes.filter(w => w.kind === 'op').length, 1);
  });

  it('unlinks: content goes with its last link', async () => {
    const r = recorder();
    const c = commit('alice', 'doomed');
    await t.catalog.commitUpload(c, r.blob, r.link);
    await t.catalog.link('bob', c.blob.sha1, 'b.bin', r.one);
    await assert.rejects(t.catalog.unlink('carol', c.blob.sha1, r.one), { status: 404, code: 'FILE_NOT_FOUND' });
    assert.equal(await t.catalog.unlink('alice', c.blob.sha1, r.one), false);
    assert.equal((await t.catalog.getBlob(c.blob.sha1))?.refs, 1);
    assert.equal(await t.catalog.getUserFile('alice', c.blob.sha1), undefined);
    assert.deepEqual(await t.catalog.listUserFiles('alice', 10), []);
    assert.equal(await t.catalog.unlink('bob', c.blob.sha1, r.one), true);
    assert.equal(await t.catalog.getBlob(c.blob.sha1), undefined);
    await assert.rejects(t.catalog.link('carol', c.blob.sha1, 'late.bin', r.one), { status: 404 });
  });

  it('lists a user\'s files newest first, up to a limit, ties in the same order on every backend', async () => {
    const r = recorder();
    const t0 = Date.now() - 60_000;
    const names = Array.from({ length: 12 }, (_, i) => `f${i}`);
    // two at the same millisecond: ordered by sha1, descending
    for (const [ i, n ] of names.entries()) await t.catalog.commitUpload(commit('alice', n, n, t0 + (i < 2 ? 0 : i)), r.blob, r.link);
    await t.catalog.commitUpload(commit('bob', 'bobs', 'bobs'), r.blob, r.link);
    const all = await t.catalog.listUserFiles('alice', 100);
    assert.equal(all.length, 12);
    const tied = [ 'f0', 'f1' ].sort((a, b) => (sha1Of(a) < sha1Of(b) ? 1 : -1));
    assert.deepEqual(all.map(f => f.name), [ ...names.slice(2).reverse(), ...tied ]);
    assert.deepEqual((await t.catalog.listUserFiles('alice', 3)).map(f => f.name), [ 'f11', 'f10', 'f9' ]);
    assert.deepEqual(await t.catalog.listUserFiles('nobody', 5), []);
  });

  it('keeps users apart whatever their ids hold', async () => {
    const r = recorder();
    // lone surrogates too: the store refuses such ids, the catalog keeps them apart all the same
    const users = [ 'u', 'U', 'u ', '用户', 'a:b', '{tag}', 'x'.repeat(300), 'x\ud800', 'x\ufffd', '\udc00\ud800', '\ud800\udc00' ];
    for (const u of users) await t.catalog.commitUpload(commit(u, `content of ${u}`), r.blob, r.link);
    for (const u of users) {
      assert.deepEqual((await t.catalog.listUserFiles(u, 10)).map(f => f.sha1), [ sha1Of(`content of ${u}`) ], u);
    }
  });

  it('replays records in seq order, newer than it holds, once', async () => {
    const t0 = Date.now() - 5000;
    const up = commit('alice', 'replayed', 'r.bin', t0);
    const blob = { kind: 'blob' as const, sha1: up.blob.sha1, user: 'alice', name: 'r.bin', fileId: up.blob.fileId, size: up.blob.size, mime: up.blob.mime };
    const records: ReplayRecord[] = [
      { ...blob, seq: 1, time: t0 },
      { kind: 'link', seq: 2, time: t0 + 1, sha1: up.blob.sha1, user: 'bob', name: 'b.bin', at: t0 + 1 },
      { kind: 'link', seq: 4, time: t0 + 3, sha1: up.blob.sha1, user: 'alice', name: 'renamed.bin', at: t0 },
      { kind: 'unlink', seq: 3, time: t0 + 2, sha1: up.blob.sha1, user: 'bob' },
      { kind: 'link', seq: 5, time: t0 + 4, sha1: sha1Of('gone'), user: 'carol', name: 'g.bin', at: t0 + 4 },
    ];
    assert.equal(await t.catalog.replay(records.slice(0, 2)), 2);
    assert.equal(await t.catalog.replay(records), 3, 'what it holds already is skipped');
    assert.equal(await t.catalog.replay(records), 0);
    assert.deepEqual(await t.catalog.getBlob(up.blob.sha1), { ...up.blob, refs: 1 });
    const alices = await t.catalog.getUserFile('alice', up.blob.sha1);
    assert.deepEqual([ alices?.name, alices?.at, alices?.mtime ], [ 'renamed.bin', t0, t0 + 3 ]);
    assert.equal(await t.catalog.getUserFile('bob', up.blob.sha1), undefined);
    assert.deepEqual(await t.catalog.listUserFiles('carol', 5), [], 'a link to content never stored is not revived');
    // a live operation after a replay takes a seq past it
    const r = recorder();
    await t.catalog.commitUpload(commit('dave', 'after'), r.blob, r.link);
    assert(r.writes[0].seq > 5);
  });

  it('skips in a replay the records that live operations already committed: a deleted file stays deleted', async () => {
    const r = recorder();
    const c = commit('alice', 'live then gone');
    await t.catalog.commitUpload(c, r.blob, r.link);
    await t.catalog.unlink('alice', c.blob.sha1, r.one);
    const [ blobSeq, unlinkSeq ] = r.writes.map(w => w.seq);
    const records: ReplayRecord[] = [
      { kind: 'blob', seq: blobSeq, time: c.blob.time, sha1: c.blob.sha1, user: 'alice', name: c.name, fileId: c.blob.fileId, size: c.blob.size, mime: c.blob.mime },
    ];
    // the unlink record is in another extent, which recovery does not rescan
    assert.equal(await t.catalog.replay(records), 0);
    assert.equal(await t.catalog.getBlob(c.blob.sha1), undefined);
    assert(unlinkSeq > blobSeq);
  });

  it('commits the same new content from two handles at once as one blob with two links', async () => {
    const other = await t.other();
    try {
      const r = recorder();
      const [ a, b ] = await Promise.all([
        t.catalog.commitUpload(commit('alice', 'race'), r.blob, r.link),
        other.commitUpload(commit('bob', 'race'), r.blob, r.link),
      ]);
      assert.equal([ a, b ].filter(o => o.created).length, 1, 'one created it');
      assert.equal(a.blob.fileId, b.blob.fileId);
      assert.equal((await t.catalog.getBlob(sha1Of('race')))?.refs, 2);
      const writes = new Set(r.writes.map(w => w.seq));
      assert.equal(writes.size, r.writes.length, 'no two writes share a seq');
    } finally {
      await other.close();
    }
  });
}
