import type { Session, SessionStore } from './types';

/** A user's open-upload keys: the id's length first, so no user's prefix begins another's ('a' and 'a:'). */
export const openKeyPrefix = (user: string) => `open:${user.length}:${user}:`;
/** The key that counts an unfinished upload against its user's limit. */
const openKey = (s: Session) => `${openKeyPrefix(s.user)}${s.id}`;
/** The key sessions created before the length was in it carry (dropped with them, never set). */
const legacyOpenKey = (s: Session) => `open:${s.user}:${s.id}`;

/** A session's lookup keys: its protocol key, its open-upload key. */
export const keysOf = (s: Session): string[] => (s.key ? [ s.key, openKey(s) ] : [ openKey(s) ]);
/** Every lookup key that may point at a session, older forms included. */
export const keysToDrop = (s: Session): string[] => [ ...keysOf(s), legacyOpenKey(s) ];

/** Removes a session's lookup keys that still point at it. */
export async function dropKeys(db: SessionStore, s: Session): Promise<void> {
  await db.update(s.id, () => undefined, { dropKeys: keysToDrop(s) });
}
