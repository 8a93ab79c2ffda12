import { BadRequestError } from '../../lib';

/** A whole number from a node-to-node query parameter (digits only), else 400 INVALID_PARAM. */
export function wholeNumber(text: unknown, what: string): number {
  const n = typeof text === 'string' && /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new BadRequestError('INVALID_PARAM', `${what} must be a whole number`);
  return n;
}

/**
 * The calling node named by `group` and `server` in the query: another member
 * of this node's group, else 400 NOT_A_GROUP_PEER (`serves`: what this node
 * does for its group's members, for the message).
 */
export function groupPeerOf(q: Record<string, unknown>, self: { group: number; server: number }, serves: string): { group: number; server: number } {
  const group = wholeNumber(q.group, 'group');
  const server = wholeNumber(q.server, 'server');
  if (group !== self.group || server === self.server) {
    throw new BadRequestError('NOT_A_GROUP_PEER', `this node (${self.group}.${self.server}) ${serves} of its own group's members only, not ${group}.${server}`);
  }
  return { group, server };
}
