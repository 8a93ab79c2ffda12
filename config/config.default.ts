import path from 'node:path';
import type { EggAppConfig, EggAppInfo, Context } from 'egg';
import type { TusCorsOptions } from '../lib/tus/cors';
import type { FuploadConfig } from '../lib/fupload/task';
import type { SonofsPageOptions } from '../app/lib/page/options';
import { DEV_CLUSTER_SECRET } from '../lib/cluster/node-auth';
import { DEFAULT_PLACEMENT, PlacementConfig } from '../lib/cluster/placement';

/** `config.sonofs.authenticate`: the request's user id, or nothing for 401. */
export type UserId = string | number;
export type AuthenticateHook = (ctx: Context) => UserId | null | undefined | Promise<UserId | null | undefined>;

/** The plugin's settings, under `config.sonofs`. */
export interface SonofsConfig {
  /** Where bundles and the catalog live. */
  root: string;
  /** This node's group (0–255); nodes of a group back each other up in cluster mode. */
  group: number;
  /** This node's server number inside its group (0–255). */
  server: number;
  /** URL prefix of the built-in routes (default `/file`, as in the course). */
  prefix: string;
  /** Register the built-in routes; turn off to mount your own. */
  routes: boolean;
  /**
   * GET `<prefix>/upload` serves the upload page (many files, folders, drag and
   * drop, resumable tus uploads, 秒传, the user's files); `false` keeps the
   * plain one-file form. An object sets its chunk size, hash limit, sign-in URL...
   */
  page: boolean | SonofsPageOptions;
  /**
   * Check Egg's CSRF token on the built-in routes that change what is stored
   * (POST upload, update, delete, 秒传, chunked upload). Off by default, as
   * the course's clients send no token; turn it on when `authenticate` reads
   * a cookie or session, so another site cannot act as the signed-in user.
   */
  csrf: boolean;
  /**
   * Let `GET <prefix>/delete` delete, as the course does. Turn it off (405)
   * when `authenticate` reads a cookie: a link or an image on another site
   * would otherwise delete the user's file.
   */
  stateChangingGet: boolean;
  /** Size of a bundle file; allocated sparsely (default 1 GiB). */
  bundleSize: number;
  /** Space a worker leases from the agent at a time (default 64 MiB). */
  extentSize: number;
  /** Largest file accepted (default 10 GiB). */
  maxFileSize: number;
  /** fdatasync before acknowledging (group commit); off trades power-loss safety for speed. */
  fsync: boolean;
  /**
   * Who is asking: returns the id of the user whose files the request reads
   * and writes (a string, or a number such as a database id). Return nothing
   * (or throw) to answer 401. Default: every request is user `anonymous`.
   * Optional so that egg's `PowerPartial<EggAppConfig>` keeps its parameter type.
   */
  authenticate?: AuthenticateHook;
  /** Resumable uploads (tus, the course's chunked upload, fupload tasks): one session engine. */
  uploads: {
    /** an unfinished upload idle this long is removed with its bytes (ms) */
    ttl: number;
    /** a finished or cancelled upload still answers HEAD/status for this long (ms) */
    doneTtl: number;
    /** how long a request waits for another request on the same upload (ms) */
    lockTimeout: number;
    /** how often the agent sweeps expired uploads (ms) */
    sweepInterval: number;
    /** unfinished uploads one user may have at once (429 beyond) */
    maxOpenPerUser: number;
  };
  /** The tus 1.0.0 server (resumable uploads any tus client can drive), on the upload sessions. */
  tus: {
    /** register the tus endpoint */
    enabled: boolean;
    /** its path (default `/files`: POST `/files`, then `/files/<id>`); exempt from CSRF and the body parser */
    path: string;
    /** honour X-Forwarded-Proto/Host/Prefix in the Location we hand out (also on when `config.proxy`) */
    trustProxy: boolean;
    /** a creation-with-upload POST carrying the whole file up to this size is stored in one go, no session bytes */
    fastPathMax: number;
    /**
     * an upload of up to this size reserves no space when it is created: the PATCH that
     * brings all of it from byte 0 stores it in one go (a body of it cut short is not kept:
     * the client sends it again); any other first PATCH reserves the space then. Not in cluster mode.
     */
    wholePatchMax: number;
    /** browser clients on other origins */
    cors: TusCorsOptions;
  };
  /**
   * The fuploadServer task API (business servers create tasks, clients send
   * blocks, a callback reports the outcome). On when `servers` is non-empty or `enabled`.
   */
  fupload: FuploadConfig;
  /** Cluster mode (preview): on when `redis` names an egg-redis client the agent has. */
  cluster: SonofsClusterConfig;
}

/** `config.sonofs.cluster` */
export interface SonofsClusterConfig {
  /**
   * The egg-redis client of the registry: `true` for the single client
   * (`config.redis.client`), a name for one of `config.redis.clients`.
   * false or '' (default): embedded mode, no Redis at all.
   */
  redis: boolean | string;
  /** nodes sharing a namespace (and a Redis) form one cluster; it is the hash tag of every key */
  namespace: string;
  /** how other nodes reach this one: its HTTP base URL (required in cluster mode) */
  advertiseUrl: string;
  /** authenticates node-to-node calls; the same on every node (the default is for development and logs a warning) */
  secret: string;
  /** a node that stops beating leaves the map this long after its last heartbeat (ms) */
  ttl: number;
  /** heartbeat period, also how often the map is re-read when Pub/Sub says nothing (ms) */
  heartbeat: number;
  /** lease of the cluster-wide duties: the holder keeps them this long after its last renewal (ms) */
  leaseTtl: number;
  /** one Redis call that takes longer counts as failed (ms) */
  redisTimeout: number;
  /**
   * A download of a file id another node holds: `'proxy'` (default) streams
   * it from that node (Range, ETag and conditional requests as on one node);
   * `'redirect'` answers 307 to that node's own `<prefix>/download` URL, so
   * its advertiseUrl must be one clients can reach.
   */
  remoteReads: 'proxy' | 'redirect';
  /**
   * A node asked for a file must take the connection and answer within this,
   * and may not fall silent longer mid-body (ms); else the download is a 503
   * (before any byte was sent) or cut (after).
   */
  readTimeout: number;
  /** how often a node looks for new records of its group's other members when the last look found none (ms) */
  replicationInterval: number;
  /**
   * When an upload of new content is acknowledged: `'all'` (default) once it
   * is synced on every live member of the writer's group (each copies it at
   * once), `'one'` once it is synced on the writer (members copy it within
   * `replicationInterval`). A member that does not confirm within
   * `copyTimeout` (plus the bytes at `copyRate`) is left to the background
   * copy and the answer counts one copy less. Answers say how many nodes hold
   * the content (`Copies`, header `Sonofs-Copies`).
   */
  replication: 'all' | 'one';
  /** how long a writer waits for a member's copy, beyond the time its bytes take at copyRate (ms) */
  copyTimeout: number;
  /** the slowest copy rate a writer allows a member, for large files (MiB/s) */
  copyRate: number;
  /**
   * Which group stores a single-request upload (POST `<prefix>/upload`,
   * `ctx.sonofs.upload`): this node's while it keeps `minFreeBytes` free
   * after the file and its load is at most `maxLoad`, else the group scored
   * best by `weights` (free space, load); another group's member receives
   * the bytes streamed. None fits: 507.
   */
  placement: PlacementConfig;
  /** bytes of this node's disk kept for other uses: the free space it advertises (and placement sees) is less this */
  reserveBytes: number;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const HOUR = 3600_000;

export default (appInfo: EggAppInfo) => {
  const config = {} as Partial<EggAppConfig> & { sonofs: SonofsConfig; redis: { agent: boolean } };

  config.sonofs = {
    root: path.join(appInfo.baseDir, 'data', 'sonofs'),
    group: 0,
    server: 0,
    prefix: '/file',
    routes: true,
    page: true,
    csrf: false,
    stateChangingGet: true,
    bundleSize: GiB,
    extentSize: 64 * MiB,
    maxFileSize: 10 * GiB,
    fsync: true,
    authenticate: () => 'anonymous',
    uploads: {
      ttl: 24 * HOUR,
      doneTtl: 24 * HOUR,
      lockTimeout: 10_000,
      sweepInterval: 60_000,
      maxOpenPerUser: 1000,
    },
    tus: {
      enabled: true,
      path: '/files',
      trustProxy: false,
      fastPathMax: MiB,
      wholePatchMax: 256 * 1024,
      cors: { origins: [ '*' ], allowHeaders: [], credentials: false, maxAge: 86400 },
    },
    fupload: {
      enabled: false,
      prefix: '/api/upload',
      servers: {},
      notifyTimeout: 5000,
      notifyAttempts: 5,
      notifyDelay: 1000,
      notifyScanInterval: 5000,
      finishRetryAfter: 30_000,
      finishAttempts: 5,
    },
    cluster: {
      redis: false,
      namespace: 'sonofs',
      advertiseUrl: '',
      secret: DEV_CLUSTER_SECRET,
      ttl: 5000,
      heartbeat: 1000,
      leaseTtl: 5000,
      redisTimeout: 2000,
      remoteReads: 'proxy',
      readTimeout: 3000,
      replicationInterval: 1000,
      replication: 'all',
      copyTimeout: 5000,
      copyRate: 20,
      placement: { ...DEFAULT_PLACEMENT, weights: { ...DEFAULT_PLACEMENT.weights } },
      reserveBytes: 0,
    },
  };

  // When the app enables egg-redis, the agent gets a client of its own (the registry lives in the agent).
  config.redis = { agent: true };

  return config;
};
