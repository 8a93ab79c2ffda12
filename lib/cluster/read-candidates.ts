/** A node that may serve a file this node does not hold, as the registry lists it. */
export interface ReadCandidate {
  group: number;
  server: number;
  /** its advertised HTTP base URL, without a trailing slash */
  url: string;
  /** it is the file's own server (the one that wrote it), not another member of its group */
  own: boolean;
}

/** The part of a registry entry the choice needs. */
export interface CandidateNode {
  group: number;
  server: number;
  url: string;
  instance: string;
  state: string;
}

export interface CandidateOptions {
  /** this node's instance id: never a candidate (it would ask itself) */
  self?: string;
  /**
   * Members of a group hold copies of each other's bundles: list them after
   * the file's own server (one that has not copied the file yet answers 404,
   * which the reader skips).
   */
  groupCopies?: boolean;
}

/**
 * Which nodes to read a file of `file.group`/`file.server` from, best first:
 * the file's own server, then (with `groupCopies`) the other members of its
 * group that are up. Only nodes that are up in the map are listed, so an
 * empty answer means no live node holds the file.
 */
export function readCandidates(
  nodes: ReadonlyArray<CandidateNode>, file: { group: number; server: number }, opts: CandidateOptions = {},
): ReadCandidate[] {
  const live = nodes.filter(n => n.state === 'up' && n.instance !== opts.self && n.group === file.group);
  const own = live.filter(n => n.server === file.server);
  const others = opts.groupCopies ? live.filter(n => n.server !== file.server) : [];
  return [ ...own, ...others ].map(n => ({
    group: n.group, server: n.server, url: n.url.replace(/\/+$/, ''), own: n.server === file.server,
  }));
}
