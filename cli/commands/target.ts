import { usage } from '../errors';
import { SHA1 } from '../hash';

/** A file id: 28 base64url characters (README "How it works"). */
const FILE_ID = /^[A-Za-z0-9_-]{28}$/;

export interface Target {
  /** set when the argument is a sha1 (lower case) */
  sha1?: string;
  fileId?: string;
  /** the download route's parameter for it */
  params: Record<string, string>;
}

/** A command's ID|SHA1 argument. */
export function target(ref: string): Target {
  if (SHA1.test(ref)) {
    const sha1 = ref.toLowerCase();
    return { sha1, params: { filehash: sha1 } };
  }
  if (FILE_ID.test(ref)) return { fileId: ref, params: { fileid: ref } };
  throw usage(`"${ref}" is neither a file id (28 characters) nor a sha1 (40 hex digits)`);
}
