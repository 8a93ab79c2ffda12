/**
 * One error family for the whole engine. Each error carries the HTTP status
 * it maps to and a stable machine-readable `code`; the Egg glue turns any
 * SonofsError into `{ code, msg }` with that status in one place.
 */
export class SonofsError extends Error {
  readonly status: number;
  readonly code: string;
  /** Errors with `expose` are safe to show to the client verbatim. */
  readonly expose = true;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = this.constructor.name;
    this.status = status;
    this.code = code;
  }
}

/** 400: the request itself is malformed (bad id, bad hash, bad parameter). */
export class BadRequestError extends SonofsError {
  constructor(code: string, message: string) {
    super(400, code, message);
  }
}

/** 401: the configured authenticate hook did not accept the request. */
export class UnauthorizedError extends SonofsError {
  constructor(message = 'authentication required') {
    super(401, 'UNAUTHORIZED', message);
  }
}

/** 403: the operation is not allowed (e.g. /file/update with op != 0). */
export class ForbiddenError extends SonofsError {
  constructor(code: string, message: string) {
    super(403, code, message);
  }
}

/** 404: well-formed but unknown (no record, wrong cookie, deleted link). */
export class NotFoundError extends SonofsError {
  constructor(code: string, message: string) {
    super(404, code, message);
  }
}

/**
 * 404 here: a well-formed file id that names another node (its group and
 * server), whose disk holds the bytes. A node alone answers it as not found;
 * in a cluster the read is routed to that node's group instead.
 */
export class OtherNodeFileError extends NotFoundError {
  constructor(readonly group: number, readonly server: number) {
    super('FILE_NOT_FOUND', `no file has this fileid on this node (it names node ${group}.${server})`);
  }
}

/** 405: the route exists but not for this method. */
export class MethodNotAllowedError extends SonofsError {
  constructor(method: string, allowed: string[]) {
    super(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed here; use ${allowed.join(' or ')}`);
  }
}

/** 413: the upload exceeds maxFileSize (or its declared bound). */
export class FileTooLargeError extends SonofsError {
  constructor(limit: number) {
    super(413, 'FILE_TOO_LARGE', `file exceeds the maximum size of ${limit} bytes`);
  }
}

/** 416: a Range header that cannot be satisfied for this file. */
export class RangeNotSatisfiableError extends SonofsError {
  constructor(readonly size: number) {
    super(416, 'RANGE_NOT_SATISFIABLE', `requested range is outside the file (size ${size})`);
  }
}

/** 400: the client went away mid-upload (if it still reads the answer); nothing was recorded. */
export class UploadAbortedError extends SonofsError {
  constructor(message = 'upload aborted by the client before it finished') {
    super(400, 'UPLOAD_ABORTED', message);
  }
}

/** 500: stored bytes failed their checksum; never served. */
export class CorruptRecordError extends SonofsError {
  constructor(message: string) {
    super(500, 'CORRUPT_RECORD', message);
  }
}

/** 503: a dependency (the agent, the disk) did not answer in time. */
export class UnavailableError extends SonofsError {
  constructor(code: string, message: string) {
    super(503, code, message);
  }
}

/**
 * 503: the file is another node's and no node holding it answered in time
 * (not in the cluster map, refused the connection, no answer within the read
 * timeout, or an error of its own). `details` names the nodes tried and what
 * each did, for the log; the client sees the message only.
 */
export class NodeUnavailableError extends UnavailableError {
  constructor(readonly group: number, readonly server: number, reason: string, readonly details: string[] = []) {
    super('NODE_UNAVAILABLE', `this file is stored on node ${group}.${server}, which cannot serve it now (${reason}); retry later`);
  }
}

/**
 * 503: the shared catalog (Redis, in cluster mode) did not answer: not
 * reachable, or not within config.sonofs.cluster.redisTimeout. Raised at the
 * catalog seam (catalog/redis-guard.ts), so every route and ctx.sonofs call
 * that needs the catalog fails the same way. `maybeApplied`: the call may
 * have reached Redis before the answer was lost (a timeout, a connection cut
 * while it was out), so its change may be there after all.
 */
export class MetadataUnavailableError extends UnavailableError {
  constructor(readonly reason: string, readonly maybeApplied = false) {
    super('METADATA_UNAVAILABLE', `the shared catalog (Redis) is not reachable (${reason}); retry later`);
  }
}

/** 507: no group of the cluster has room for this upload (placement found none that fits). */
export class InsufficientStorageError extends SonofsError {
  constructor(message: string) {
    super(507, 'INSUFFICIENT_STORAGE', message);
  }
}

/** 409: the request does not fit the resource's current state (e.g. a tus offset that is not the upload's). */
export class ConflictError extends SonofsError {
  constructor(code: string, message: string) {
    super(409, code, message);
  }
}

/** 410: the upload existed but expired or was cancelled. */
export class GoneError extends SonofsError {
  constructor(code: string, message: string) {
    super(410, code, message);
  }
}

/** 423: another request holds the upload's lock and did not let go in time. */
export class LockedError extends SonofsError {
  constructor(message = 'another request is writing to this upload; retry shortly') {
    super(423, 'UPLOAD_LOCKED', message);
  }
}

/** 460 (tus checksum extension): the bytes did not match the checksum sent; they were discarded. */
export class ChecksumMismatchError extends SonofsError {
  constructor(message: string) {
    super(460, 'CHECKSUM_MISMATCH', message);
  }
}

/**
 * 503: an unfinished upload's bytes are on the disk of another node (the one
 * it was started on), and only that node can write, commit or free them.
 */
export class UploadElsewhereError extends UnavailableError {
  /** seconds after which a retry may succeed (Retry-After), when known */
  retryAfter?: number;

  constructor(readonly node: string, readonly why?: string, takeOver?: { withinMs: number }) {
    super('UPLOAD_ON_OTHER_NODE', why
      ? `the node holding this upload's bytes (${node}) is ${why}; ${takeOver
        ? `should it stay away, a member of its group takes the upload over once it has left the cluster map (within ${takeOver.withinMs} ms): retry then`
        : 'retry when it is back'}`
      : `this upload's bytes are on node ${node}, which alone can continue it: send its requests to that node (if it is down, retry when it is back)`);
    if (takeOver) this.retryAfter = Math.ceil(takeOver.withinMs / 1000) + 1;
  }
}
