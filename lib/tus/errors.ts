import { BadRequestError, SonofsError } from '../errors';

/**
 * tus-specific answers, as SonofsErrors so the one sendError maps them to
 * `{ code, msg }` with their status like every other error of the plugin.
 */
export const tusErrors = {
  /** 412 (Core): the client speaks a version we do not; the answer carries Tus-Version. */
  version: (got: string | undefined) =>
    new SonofsError(412, 'UNSUPPORTED_TUS_VERSION', got ? `Tus-Resumable ${got} is not supported; use 1.0.0` : 'the Tus-Resumable header is required'),
  /** 415 (Core, SHOULD): PATCH bodies must be application/offset+octet-stream. */
  mediaType: () =>
    new SonofsError(415, 'UNSUPPORTED_MEDIA_TYPE', 'PATCH needs Content-Type: application/offset+octet-stream'),
  /** 413 (Creation): a body that would run past the upload's length. */
  exceedsLength: (length: number) =>
    new SonofsError(413, 'EXCEEDS_LENGTH', `the bytes would go past the upload's length ${length}`),
  /** 403 (Concatenation): a final upload takes no bytes of its own. */
  finalIsReadOnly: () =>
    new SonofsError(403, 'FINAL_UPLOAD_READ_ONLY', 'a final (concatenated) upload cannot be patched'),
  /** 409 (concatenation-unfinished): a partial has as many finals waiting for it as allowed. */
  tooManyFinals: (partialId: string, limit: number) =>
    new SonofsError(409, 'TOO_MANY_WAITING_FINALS', `partial upload ${partialId} already has ${limit} final uploads waiting for it (the limit): finish it, or terminate one of them, first`),
  bad: (code: string, message: string) => new BadRequestError(code, message),
};
