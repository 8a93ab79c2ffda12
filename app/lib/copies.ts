import type { Context } from 'egg';
import type { UploadResult } from '../../lib';

/** Cluster mode: how many nodes hold an upload's new content (Sonofs-Copies), in every upload answer. */
export function setCopies(ctx: Context, result: UploadResult): void {
  if (result.copies !== undefined) ctx.set('Sonofs-Copies', String(result.copies));
}

/** The same count in a JSON answer's data, as `Copies`. */
export function copiesOf(result: UploadResult): { Copies?: number } {
  return result.copies === undefined ? {} : { Copies: result.copies };
}
