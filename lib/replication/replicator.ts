import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../cluster/registry';
import { CopyWaiters, covers } from './copy-waiters';
import { copyAnswer } from './copier';
import { nodeGet, readText } from './node-client';
import { Hole, MAX_RANGES, WalkRange, formatRanges } from './protocol';
import {
  Position, ReplicaWriter, claimPeerDir, loadPosition, peerDir, replicaBundlePath, savePosition,
} from './replica-files';

/** A live member of this node's group, from the registry's map. */
export interface Peer {
  group: number;
  server: number;
  url: string;
  instance: string;
}

export interface ReplicatorOptions {
  root: string;
  self: { group: number; server: number };
  secret: string;
  /** pause after a pass over a peer that found nothing new (ms) */
  intervalMs: number;
  log: Logger;
}

/** How far this node's copy of one peer is. */
export interface PeerStatus {
  group: number;
  server: number;
  /** bytes of the peer's bundles not copied yet, as of the last look (records that failed their checksum count) */
  lagBytes: number;
  /** ms: everything the peer acknowledged before then is here (the start of the last complete pass); null before one */
  upTo: number | null;
  /** the last pass copied nothing */
  idle: boolean;
  error: string | null;
}

/** What a node says about its copies with each heartbeat. */
export interface ReplicationReport {
  lagBytes: number;
  /** 0 when every copy found nothing new at its last look; otherwise ms since the copies were last complete; null before that */
  lagMs: number | null;
  /** the oldest of the peers' upTo (now when the node has no live peer) */
  upTo: number | null;
  peers: PeerStatus[];
}

/** Node-to-node paths (not under the plugin's public prefix). */
export const NODE_API = '/_sonofs/node';

/** Longest wait before a record that failed its checksum is asked for again. */
const MAX_RETRY_MS = 10 * 60_000;

/** How often whenCopied looks again for a peer not yet in the map. */
const PEER_WAIT_STEP_MS = 50;

/**
 * The catch-up of a node's copies: one loop per live peer of its group, each
 * pass asking the peer which bundles it has, then streaming what this node
 * lacks (from the saved position, and the holes left by uploads in progress).
 * Records land at their own offsets in root/replicas (replica-files.ts); a
 * position is saved only after the bytes it covers are synced, so a node that
 * was down goes on from where it stopped.
 */
export class Replicator {
  private readonly copies = new Map<string, PeerCopy>();
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  private closed = false;

  constructor(private readonly opts: ReplicatorOptions) {}

  /** The live members of the map; those of this node's group (but itself) are copied. */
  setPeers(nodes: Peer[]): void {
    if (this.closed) return;
    const { group, server } = this.opts.self;
    const want = new Map(nodes.filter(n => n.group === group && n.server !== server).map(n => [ `${n.group}-${n.server}`, n ]));
    for (const [ key, copy ] of this.copies) {
      const peer = want.get(key);
      if (peer && peer.instance === copy.peer.instance) {
        copy.peer = peer; // its URL may have changed
        continue;
      }
      this.copies.delete(key);
      void copy.stop();
    }
    for (const [ key, peer ] of want) {
      if (this.copies.has(key)) continue;
      this.opts.log.info('[egg-sonofs] replication: copying the bundles of group %d server %d from %s', peer.group, peer.server, peer.url);
      this.copies.set(key, new PeerCopy(peer, this.opts, this.agents));
    }
  }

  report(now = Date.now()): ReplicationReport {
    const peers = [ ...this.copies.values() ].map(c => c.status());
    const lagBytes = peers.reduce((n, p) => n + p.lagBytes, 0);
    const upTo = peers.some(p => p.upTo === null) ? null : Math.min(now, ...peers.map(p => p.upTo!));
    const lagMs = upTo === null ? null : peers.every(p => p.idle) && lagBytes === 0 ? 0 : now - upTo;
    return { lagBytes, lagMs, upTo, peers };
  }

  /**
   * A record of a peer's copy failed its checksum when read: it becomes a
   * hole of its copy again, asked for from the peer at once. Ignored unless
   * the peer is copied and the record lies in what is copied already.
   */
  repair(bad: { group: number; server: number; bundle: number; offset: number; slotLen: number }): boolean {
    const { group, server, bundle, offset, slotLen } = bad;
    if (![ group, server, bundle, offset, slotLen ].every(Number.isSafeInteger) || offset % 8 || slotLen <= 0 || slotLen % 8) return false;
    const copy = this.copies.get(`${group}-${server}`);
    return copy ? copy.repair(bundle, [ offset, offset + slotLen ]) : false;
  }

  /**
   * Resolves true once this node's copy of `peer` holds [start, end) of a
   * bundle, synced (copied now: the peer's loop is woken), or false after
   * `timeoutMs`: the peer is not (yet) in this node's map under that
   * instance, or the bytes could not be copied in time. How a writer learns
   * its upload has a second copy (replication 'all').
   */
  async whenCopied(peer: { group: number; server: number; instance: string }, want: { bundle: number; start: number; end: number }, timeoutMs: number): Promise<boolean> {
    const { bundle, start, end } = want;
    if (![ bundle, start, end ].every(Number.isSafeInteger) || bundle < 0 || start < 0 || end <= start) return false;
    const deadline = Date.now() + timeoutMs;
    const key = `${peer.group}-${peer.server}`;
    // a peer that has just joined may reach this node's map a heartbeat later
    for (;;) {
      const copy = this.copies.get(key);
      if (copy && copy.peer.instance === peer.instance) return copy.whenCopied(bundle, start, end, deadline - Date.now());
      if (this.closed || Date.now() + PEER_WAIT_STEP_MS > deadline) return false;
      await new Promise(resolve => setTimeout(resolve, PEER_WAIT_STEP_MS));
    }
  }

  /** Stops every loop; resolves once no copy writes any more. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [ ...this.copies.values() ];
    this.copies.clear();
    await Promise.all(all.map(c => c.stop()));
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

/** The copy of one peer's bundles, and its loop. */
class PeerCopy {
  private stopped = false;
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  private readonly dir: string;
  private claimed = false;
  /** bundle → bytes allocated on the peer, at the last listing */
  private sizes = new Map<number, number>();
  private readonly positions = new Map<number, Position>();
  /** records that failed their checksum, by `${bundle}:${start}`: asked for again after a growing pause */
  private readonly bad = new Map<string, { hole: Hole; at: number; tries: number }>();
  /** bundle → records found bad in the copy, to make holes of at the next look */
  private readonly toRepair = new Map<number, Hole[]>();
  /** `${bundle}:${start}` of records being copied again */
  private readonly repairing = new Set<string>();
  private readonly waiters = new CopyWaiters();
  private upTo: number | null = null;
  private idle = false;
  private error: string | null = null;
  private failures = 0;
  private lastFailureLog = 0;
  private readonly done: Promise<void>;

  constructor(public peer: Peer, private readonly opts: ReplicatorOptions, private readonly agents: { http: http.Agent; https: https.Agent }) {
    this.dir = peerDir(opts.root, peer.group, peer.server);
    this.done = this.run();
  }

  status(): PeerStatus {
    let lagBytes = 0;
    for (const [ bundle, size ] of this.sizes) lagBytes += Math.max(0, size - (this.positions.get(bundle)?.end ?? 0));
    for (const b of this.bad.values()) lagBytes += b.hole[1] - b.hole[0];
    return { group: this.peer.group, server: this.peer.server, lagBytes, upTo: this.upTo, idle: this.idle, error: this.error };
  }

  repair(bundle: number, hole: Hole): boolean {
    const key = `${bundle}:${hole[0]}`;
    if (this.repairing.has(key)) return true;
    this.repairing.add(key);
    this.toRepair.set(bundle, [ ...(this.toRepair.get(bundle) ?? []), hole ]);
    this.wake?.();
    return true;
  }

  whenCopied(bundle: number, start: number, end: number, timeoutMs: number): Promise<boolean> {
    const file = replicaBundlePath(this.opts.root, this.peer.group, this.peer.server, bundle);
    if (covers(this.position(bundle, file), start, end)) return Promise.resolve(true);
    if (this.stopped || timeoutMs <= 0) return Promise.resolve(false);
    const copied = this.waiters.wait(bundle, start, end, timeoutMs);
    this.wake?.();
    return copied;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.done;
    this.waiters.failAll();
  }

  private async run(): Promise<void> {
    const { log, intervalMs } = this.opts;
    while (!this.stopped) {
      try {
        const asked = this.waiters.asked;
        const copied = await this.pass();
        if (this.failures) log.info('[egg-sonofs] replication from %d.%d works again', this.peer.group, this.peer.server);
        this.failures = 0;
        this.error = null;
        // a writer that asked during the pass may want what the pass listed too early to see
        if (!copied && asked === this.waiters.asked) await this.sleep(intervalMs);
      } catch (err) {
        if (this.stopped) break;
        this.failures++;
        this.error = (err as Error).message;
        if (this.failures === 1 || Date.now() - this.lastFailureLog > 30_000) {
          this.lastFailureLog = Date.now();
          log.warn('[egg-sonofs] replication from %d.%d at %s failed (attempt %d; retrying): %s',
            this.peer.group, this.peer.server, this.peer.url, this.failures, this.error);
        }
        await this.sleep(Math.min(intervalMs * 2 ** Math.min(this.failures, 6), 30_000));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise(resolve => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One look at every bundle of the peer; resolves with the record bytes copied. */
  private async pass(): Promise<number> {
    const started = Date.now();
    if (!this.claimed) {
      const moved = claimPeerDir(this.dir, this.peer.instance);
      if (moved) this.opts.log.warn('[egg-sonofs] replication: group %d server %d is another store now (instance %s); the old copy is kept at %s', this.peer.group, this.peer.server, this.peer.instance, moved);
      this.claimed = true;
    }
    const res = await this.get('/bundles');
    const listing = JSON.parse(await readText(res, 64 << 20));
    if (!Array.isArray(listing?.bundles)) throw new Error('the peer\'s bundle list is not one');
    this.sizes = new Map(listing.bundles.filter((b: unknown) => Array.isArray(b) && b.every(Number.isSafeInteger)));
    let copied = 0;
    for (const [ bundle, size ] of this.sizes) {
      if (this.stopped) return copied;
      copied += await this.copyBundle(bundle, size);
    }
    if (!this.bad.size) this.upTo = started;
    this.idle = copied === 0;
    return copied;
  }

  private position(bundle: number, file: string): Position {
    let p = this.positions.get(bundle);
    if (!p) this.positions.set(bundle, p = loadPosition(file));
    return p;
  }

  /** Asks for the holes of a bundle (in batches) and what follows its end, until nothing moves. */
  private async copyBundle(bundle: number, size: number): Promise<number> {
    const file = replicaBundlePath(this.opts.root, this.peer.group, this.peer.server, bundle);
    const writer = new ReplicaWriter(file, this.dir);
    let copied = 0;
    let cursor = 0;
    try {
      for (;;) {
        const pos = this.withRepairs(bundle, this.position(bundle, file), file);
        const now = Date.now();
        const due = (h: Hole) => h[0] >= cursor && !((this.bad.get(`${bundle}:${h[0]}`)?.at ?? 0) > now);
        const dueHoles = pos.holes.filter(due);
        const batch = dueHoles.slice(0, MAX_RANGES - 1);
        const open = pos.end < size;
        if (!batch.length && !open) break;
        const ranges: WalkRange[] = [ ...batch.map(([ start, end ]) => ({ start, end })), ...(open ? [ { start: pos.end, end: null } ] : []) ];
        const res = await this.get(`/bundles/${bundle}`, `&ranges=${formatRanges(ranges)}`);
        // read to its end, the answer leaves the connection to the next call
        const got = await copyAnswer(res, ranges, writer).catch(err => {
          res.destroy();
          throw err;
        });
        await writer.sync();
        const asked = new Set(batch);
        const next: Position = {
          end: open ? got.end! : pos.end,
          holes: [ ...pos.holes.filter(h => !asked.has(h)), ...got.holes, ...got.bad ].sort((a, b) => a[0] - b[0]),
        };
        savePosition(file, next);
        this.positions.set(bundle, next);
        this.waiters.settle(bundle, next);
        this.noteBad(bundle, batch, got.bad);
        this.noteRepaired(bundle, batch, got.bad);
        copied += got.copied;
        // holes an answer found lie within what it was asked: not asked for again in this pass
        if (batch.length < dueHoles.length) cursor = batch[batch.length - 1][1];
        else cursor = Math.max(cursor, open ? next.end : 0, batch.length ? batch[batch.length - 1][1] : 0);
        const advanced = open && next.end > pos.end;
        if (!advanced && !next.holes.some(due)) break;
      }
    } finally {
      await writer.close();
    }
    return copied;
  }

  /**
   * Records found bad in the copy become holes of its position (saved), so
   * the walk asks for them again; one not copied yet (past the end, or a
   * hole already) is left to the walk.
   */
  private withRepairs(bundle: number, pos: Position, file: string): Position {
    const wanted = this.toRepair.get(bundle);
    if (!wanted) return pos;
    this.toRepair.delete(bundle);
    const covered = (h: Hole) => h[1] > pos.end || pos.holes.some(x => x[0] < h[1] && h[0] < x[1]);
    const fresh = wanted.filter(h => !covered(h));
    for (const h of wanted) if (covered(h)) this.repairing.delete(`${bundle}:${h[0]}`);
    if (!fresh.length) return pos;
    const next: Position = { end: pos.end, holes: [ ...pos.holes, ...fresh ].sort((a, b) => a[0] - b[0]) };
    savePosition(file, next);
    this.positions.set(bundle, next);
    return next;
  }

  /** Logs each record found bad in the copy once it is copied again. */
  private noteRepaired(bundle: number, asked: Hole[], bad: Hole[]): void {
    for (const h of asked) {
      const key = `${bundle}:${h[0]}`;
      if (!this.repairing.has(key) || bad.some(b => b[0] === h[0])) continue;
      this.repairing.delete(key);
      this.opts.log.info('[egg-sonofs] replication: repaired the copy of the record at offset %d of bundle %d of %d.%d (it had failed its checksum; copied again from %s)',
        h[0], bundle, this.peer.group, this.peer.server, this.peer.url);
    }
  }

  /** Records that failed their checksum wait longer each time; those asked for again and now copied are forgotten. */
  private noteBad(bundle: number, asked: Hole[], bad: Hole[]): void {
    for (const h of asked) {
      const key = `${bundle}:${h[0]}`;
      if (!bad.some(b => b[0] === h[0])) this.bad.delete(key);
    }
    for (const hole of bad) {
      const key = `${bundle}:${hole[0]}`;
      const tries = (this.bad.get(key)?.tries ?? 0) + 1;
      this.bad.set(key, { hole, tries, at: Date.now() + Math.min(1000 * 2 ** tries, MAX_RETRY_MS) });
      this.opts.log.warn('[egg-sonofs] replication: the record at offset %d of bundle %d of %d.%d failed its checksum on the way (attempt %d); not copied',
        hole[0], bundle, this.peer.group, this.peer.server, tries);
    }
  }

  private get(path: string, query = '') {
    return nodeGet(this.peer.url, `${NODE_API}${path}?instance=${this.peer.instance}${query}`, this.opts.secret, {
      signal: this.abort.signal, agents: this.agents,
    });
  }
}
