import type { Session } from '../../../lib';
import { GoneError, SonofsError } from '../../../lib';
import { TUS_MAX_WAITING_FINALS, tusErrors } from '../../../lib/tus';
import { TusRequest, tusExtra } from './request';

const finished = (s: Session) => s.length !== undefined && s.offset === s.length;

/** The final's length once every part's length is known (X4: sent when it can be computed). */
export function knownLength(parts: Session[]): number | undefined {
  return parts.every(p => p.length !== undefined) ? parts.reduce((n, p) => n + p.length!, 0) : undefined;
}

/**
 * After bytes arrived: an ordinary upload whose bytes are all in becomes a
 * file right away (engine.complete; also retried by HEAD, should a crash
 * come in between); a finished partial starts the finals that wait for it.
 * Partials themselves never become files.
 */
export async function finishIfComplete(t: TusRequest, s: Session): Promise<Session> {
  if (s.state === 'done' || !finished(s)) return s;
  const x = tusExtra(s);
  if (x.concat === 'partial') {
    await startWaitingFinals(t, s);
    return s;
  }
  if (x.concat === 'final') return s;
  const result = await t.engine.complete(s.id, { user: s.user });
  return { ...s, state: 'done', result };
}

/**
 * concatenation-unfinished: each final created before this partial finished
 * noted its id here; concatenate those whose parts are now all finished. The
 * PATCH that finished the partial has succeeded whatever happens here, so a
 * failure is only logged (HEAD of the final tries again).
 */
async function startWaitingFinals(t: TusRequest, partial: Session): Promise<void> {
  for (const id of tusExtra(partial).finals ?? []) {
    try {
      await concatWhenReady(t, await t.engine.get(id, partial.user));
    } catch (err) {
      if ((err as SonofsError).status !== 410 && (err as SonofsError).status !== 404) t.ctx.logger.warn('[egg-sonofs] tus final %s: %s', id, err);
    }
  }
}

/** A final's parts, in order; a part that is gone makes the final unusable (410). */
async function partsOf(t: TusRequest, final: Session): Promise<Session[]> {
  return Promise.all(tusExtra(final).parts!.map(id => t.engine.get(id, final.user).catch(err => {
    throw new GoneError('PART_GONE', `partial upload ${id} of this final upload is gone (${(err as Error).message})`);
  })));
}

/**
 * Concatenates a final (engine.concatenate) as soon as all its parts are
 * finished. With `register`, the final also notes itself in each unfinished
 * part, so the PATCH that finishes the last one concatenates it; it then
 * looks again, because a part may have finished in between (concatenate is
 * idempotent, so both noticing is fine). A part with TUS_MAX_WAITING_FINALS
 * finals already waiting refuses another (409); the caller drops the final.
 */
export async function concatWhenReady(t: TusRequest, final: Session, register = false): Promise<{ session: Session; parts: Session[] }> {
  if (final.state === 'done') return { session: final, parts: [] };
  const parts = await partsOf(t, final);
  if (!parts.every(finished)) {
    if (!register) return { session: final, parts };
    const unfinished = new Map(parts.filter(q => !finished(q)).map(q => [ q.id, q ]));
    for (const p of unfinished.values()) await waitFor(t, p, final.id);
    return concatWhenReady(t, final, false);
  }
  const result = await t.engine.concatenate(final.id, parts);
  return { session: { ...final, state: 'done', result, length: result.size, offset: result.size }, parts };
}

/**
 * Notes a final in an unfinished partial's `finals`. Finals that no longer
 * wait (concatenated, terminated, expired, gone) are dropped from the list
 * first, so the limit counts only those the partial's last PATCH would
 * concatenate.
 */
async function waitFor(t: TusRequest, partial: Session, finalId: string): Promise<void> {
  const stale = new Set<string>();
  const now = Date.now();
  await Promise.all((tusExtra(partial).finals ?? []).map(async id => {
    const f = await t.engine.db.get(id);
    if (!f || f.state !== 'active' || f.expires <= now) stale.add(id);
  }));
  let full = false;
  // A plain atomic update, not engine.update: taking the part's lock would interrupt a PATCH in flight on it.
  await t.engine.db.update(partial.id, cur => {
    full = false;
    if (finished(cur)) return undefined; // finished meanwhile: the final is concatenated when it looks again
    const was = tusExtra(cur).finals ?? [];
    const finals = was.filter(id => !stale.has(id));
    if (!finals.includes(finalId)) {
      if (finals.length >= TUS_MAX_WAITING_FINALS) full = true;
      else finals.push(finalId);
    }
    if (finals.length === was.length && finals.every((id, i) => id === was[i])) return undefined;
    return { ...cur, extra: { ...cur.extra, finals } };
  });
  if (full) throw tusErrors.tooManyFinals(partial.id, TUS_MAX_WAITING_FINALS);
}
