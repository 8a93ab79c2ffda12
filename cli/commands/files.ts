import { CliConfig } from '../config';
import { CliError, EXIT, usage } from '../errors';
import { bytes, printJson, table } from '../format';
import { SHA1 } from '../hash';
import { httpError, send, sendJson } from '../http';
import { target } from './target';

/** The course's FileMeta, as /file/meta, /file/query and /file/update answer. */
interface FileMeta {
  FileSha1: string;
  FileName: string;
  FileSize: number;
  UploadAt: string;
  FileId: string;
  Mime: string;
}

/** A file as the CLI prints it in --json. */
export interface Entry {
  name: string;
  fileId: string;
  sha1: string;
  size: number;
  mime: string;
  /** when the caller's link was made, the server's local time ("2006-01-02 15:04:05") */
  uploadedAt: string;
}

const entry = (m: FileMeta): Entry => ({ name: m.FileName, fileId: m.FileId, sha1: m.FileSha1, size: m.FileSize, mime: m.Mime, uploadedAt: m.UploadAt });

/** The caller's file with this sha1, or undefined (404). */
async function metaOf(cfg: CliConfig, sha1: string, what: string): Promise<Entry | undefined> {
  const res = await send(cfg, 'GET', `${cfg.prefix}/meta`, what, { params: { filehash: sha1 } });
  if (res.status === 404 && /json/.test(res.headers.get('content-type') ?? '')) {
    const body = await res.json().catch(() => ({})) as { code?: string };
    if (body.code === 'FILE_NOT_FOUND') return undefined;
    throw new CliError(EXIT.UNAVAILABLE, `${what}: ${res.url} is not a sonofs route; check --url and --prefix (404 ${body.code ?? ''})`.trimEnd());
  }
  if (!res.ok) throw await httpError(what, res, cfg);
  return entry(await res.json() as FileMeta);
}

/** What a HEAD of the download route tells about a file id. */
async function headOf(cfg: CliConfig, fileId: string, what: string) {
  const res = await send(cfg, 'HEAD', `${cfg.prefix}/download`, what, { params: { fileid: fileId } });
  if (res.status === 404) throw new CliError(EXIT.NOT_FOUND, `${what}: no file has this id`);
  if (!res.ok) throw await httpError(what, res, cfg);
  const sha1 = (res.headers.get('etag') ?? '').replace(/^(W\/)?"|"$/g, '').toLowerCase();
  if (!SHA1.test(sha1)) throw new CliError(EXIT.UNAVAILABLE, `${what}: the answer has no sha1 ETag; is ${cfg.base.href} a sonofs server?`);
  const lastModified = res.headers.get('last-modified');
  return {
    sha1,
    size: Number(res.headers.get('content-length')),
    // the stored type, without the charset Koa adds to text
    mime: (res.headers.get('content-type') ?? '').replace(/;\s*charset=utf-8$/i, ''),
    storedAt: lastModified ? new Date(lastModified).toISOString() : null,
  };
}

/** The sha1 an ID|SHA1 argument names (a file id is looked up). */
async function sha1Of(cfg: CliConfig, ref: string, what: string): Promise<string> {
  const t = target(ref);
  return t.sha1 ?? (await headOf(cfg, t.fileId!, what)).sha1;
}

/** `sonofs ls`: the caller's files, newest first. */
export async function ls(cfg: CliConfig, opts: { limit: number; json?: boolean }): Promise<void> {
  if (!Number.isInteger(opts.limit) || opts.limit < 1 || opts.limit > 1000) throw usage('--limit must be an integer from 1 to 1000');
  const files = (await sendJson<FileMeta[]>(cfg, 'GET', `${cfg.prefix}/query`, 'ls', { params: { limit: opts.limit } })).map(entry);
  if (opts.json) return printJson(files);
  if (!files.length) return;
  process.stdout.write(table(files.map(f => [ bytes(f.size), f.uploadedAt, f.fileId, f.sha1, f.name ]), [ 'SIZE', 'UPLOADED', 'FILE ID', 'SHA1', 'NAME' ]));
}

/**
 * `sonofs stat ID|SHA1`: the file's size, type and sha1, and the caller's
 * name and upload time when the caller has it (a file id alone lets anyone read).
 */
export async function stat(cfg: CliConfig, ref: string, opts: { json?: boolean }): Promise<void> {
  const t = target(ref);
  const what = `stat ${ref}`;
  let info;
  if (t.sha1) {
    const mine = await metaOf(cfg, t.sha1, what);
    if (!mine) throw new CliError(EXIT.NOT_FOUND, `${what}: you have no file with this sha1`);
    const head = await headOf(cfg, mine.fileId, what);
    info = { ...mine, storedAt: head.storedAt, yours: true };
  } else {
    const head = await headOf(cfg, t.fileId!, what);
    const mine = await metaOf(cfg, head.sha1, what);
    info = {
      name: mine?.name ?? null, fileId: t.fileId!, sha1: head.sha1, size: head.size, mime: head.mime,
      uploadedAt: mine?.uploadedAt ?? null, storedAt: head.storedAt, yours: !!mine,
    };
  }
  if (opts.json) return printJson(info);
  process.stdout.write(table([
    [ 'name', info.name ?? '(not in your files)' ],
    [ 'file id', info.fileId ],
    [ 'sha1', info.sha1 ],
    [ 'size', `${bytes(info.size)} (${info.size} bytes)` ],
    [ 'type', info.mime ],
    [ 'uploaded', info.uploadedAt ?? '-' ],
    [ 'stored', info.storedAt ?? '-' ],
  ]));
}

/** `sonofs mv ID|SHA1 NAME`: renames the caller's file (only the caller's name changes). */
export async function mv(cfg: CliConfig, ref: string, name: string, opts: { json?: boolean }): Promise<void> {
  if (!name.trim()) throw usage('the new name is empty');
  const what = `mv ${ref}`;
  const sha1 = await sha1Of(cfg, ref, what);
  const before = await metaOf(cfg, sha1, what);
  if (!before) throw new CliError(EXIT.NOT_FOUND, `${what}: you have no file with sha1 ${sha1}`);
  const after = entry(await sendJson<FileMeta>(cfg, 'POST', `${cfg.prefix}/update`, what, { form: { op: 0, filehash: sha1, filename: name } }));
  if (opts.json) return printJson(after);
  process.stdout.write(`${before.name} -> ${after.name}  ${after.fileId}  ${after.sha1}\n`);
}

/** `sonofs rm ID|SHA1...`: removes the caller's files (other users keep theirs). */
export async function rm(cfg: CliConfig, refs: string[], opts: { json?: boolean }): Promise<void> {
  refs.forEach(target); // every argument is checked before anything is removed
  const removed: Entry[] = [];
  for (const ref of refs) {
    const what = `rm ${ref}`;
    const sha1 = await sha1Of(cfg, ref, what);
    const mine = await metaOf(cfg, sha1, what);
    if (!mine) throw new CliError(EXIT.NOT_FOUND, `${what}: you have no file with sha1 ${sha1}`);
    await sendJson(cfg, 'POST', `${cfg.prefix}/delete`, what, { form: { filehash: sha1 } });
    removed.push(mine);
    if (!opts.json) process.stdout.write(`removed ${mine.name}  ${mine.fileId}  ${mine.sha1}\n`);
  }
  if (opts.json) printJson(removed);
}
