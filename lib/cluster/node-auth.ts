import { createHmac, timingSafeEqual } from 'node:crypto';

/** The secret nodes use when none is configured: fine on a laptop, logged as a warning. */
export const DEV_CLUSTER_SECRET = 'sonofs-development-secret';

/** Header carrying `<ms>.<hex hmac>` on a call from one node to another. */
export const NODE_AUTH_HEADER = 'x-sonofs-node-auth';

function mac(secret: string, method: string, path: string, at: number): string {
  return createHmac('sha256', secret).update(`${method.toUpperCase()}\n${path}\n${at}`).digest('hex');
}

/** The header value for a node-to-node request (method and path with its query). */
export function signNodeRequest(secret: string, method: string, path: string, now = Date.now()): string {
  return `${now}.${mac(secret, method, path, now)}`;
}

/** True when `header` was made with `secret` for this method and path, within `skewMs` of now. */
export function verifyNodeRequest(secret: string, method: string, path: string, header: string | undefined, now = Date.now(), skewMs = 60_000): boolean {
  const m = /^(\d{1,16})\.([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return false;
  const at = Number(m[1]);
  if (Math.abs(now - at) > skewMs) return false;
  return timingSafeEqual(Buffer.from(m[2], 'hex'), Buffer.from(mac(secret, method, path, at), 'hex'));
}
