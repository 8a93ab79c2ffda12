import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse as parseDisposition } from 'content-disposition';
import { CliConfig } from '../config';
import { CliError, EXIT, localError } from '../errors';
import { bytes, rate } from '../format';
import { SHA1, Sha1Counter, hashFile } from '../hash';
import { httpError, send } from '../http';
import { onInterrupt } from '../interrupt';
import { Progress } from '../progress';
import { target } from './target';

export interface GetOptions {
  output?: string;
  force?: boolean;
  json?: boolean;
}

interface Remote {
  size: number;
  sha1: string;
  name: string;
  mime: string;
}

/** The file's size, sha1 (its ETag) and the caller's name for it, without its bytes. */
async function probe(cfg: CliConfig, what: string, params: Record<string, string>): Promise<Remote> {
  const res = await send(cfg, 'HEAD', `${cfg.prefix}/download`, what, { params });
  if (res.status === 404) throw new CliError(EXIT.NOT_FOUND, `${what}: ${params.filehash ? 'you have no file with this sha1' : 'no file has this id'}`);
  if (!res.ok) throw await httpError(what, res, cfg);
  const sha1 = (res.headers.get('etag') ?? '').replace(/^(W\/)?"|"$/g, '');
  const size = Number(res.headers.get('content-length'));
  if (!SHA1.test(sha1) || !Number.isSafeInteger(size)) {
    throw new CliError(EXIT.UNAVAILABLE, `${what}: the answer has no sha1 ETag or no length; is ${cfg.base.href} a sonofs server?`);
  }
  let name = '';
  try {
    name = parseDisposition(res.headers.get('content-disposition') ?? '').parameters.filename ?? '';
  } catch {}
  return { size, sha1: sha1.toLowerCase(), name, mime: (res.headers.get('content-type') ?? '').replace(/;\s*charset=utf-8$/i, '') };
}

/** A stored name as a local file name: no directories, nothing hidden or empty. */
function localName(name: string, fallback: string): string {
  const base = path.basename(name.replace(/\\/g, '/')).replace(/[\0-\x1f]/g, '_');
  return base && base !== '.' && base !== '..' ? base : fallback;
}

/**
 * `sonofs get ID|SHA1 [-o FILE]`: downloads into FILE.<sha1>.part, resuming
 * a partial one with Range, checks the sha1, then renames it to FILE. `-o -`
 * writes to standard output (no resume; the sha1 is still checked).
 */
export async function get(cfg: CliConfig, ref: string, opts: GetOptions): Promise<void> {
  const t = target(ref);
  const what = `get ${ref}`;
  const remote = await probe(cfg, what, t.params);
  if (t.sha1 && t.sha1 !== remote.sha1) throw new CliError(EXIT.INTEGRITY, `${what}: the server answered with sha1 ${remote.sha1}`);
  const toStdout = opts.output === '-';
  const out = opts.output ?? localName(remote.name, remote.sha1);
  if (!toStdout && !opts.force && fs.existsSync(out)) {
    throw new CliError(EXIT.GENERAL, `${out} exists; pass --force to overwrite it`);
  }
  const part = `${out}.${remote.sha1.slice(0, 12)}.part`;
  let hash = createHash('sha1');
  let have = 0;
  if (!toStdout) {
    try {
      have = fs.statSync(part).size;
    } catch {}
    if (have > remote.size) have = 0;
    // the partial file's bytes are hashed again rather than trusted from an earlier run
    if (have) {
      try {
        await hashFile(part, hash, undefined, have);
      } catch (err) {
        throw localError(part, err);
      }
    }
  }
  const progress = new Progress(cfg.progress && !(toStdout && process.stdout.isTTY));
  const bar = progress.add(toStdout ? remote.name || remote.sha1 : path.basename(out), remote.size);
  const started = Date.now();
  let received = 0;
  if (have < remote.size || remote.size === 0) {
    const headers: Record<string, string> = have ? { Range: `bytes=${have}-`, 'If-Range': `"${remote.sha1}"` } : {};
    const res = await send(cfg, 'GET', `${cfg.prefix}/download`, what, { params: t.params, headers });
    if (!res.ok) throw await httpError(what, res, cfg);
    if (res.status !== 206 && have) {
      // the server sent the whole file: start over
      have = 0;
      hash = createHash('sha1');
    }
    const sink: Writable = toStdout ? process.stdout : fs.createWriteStream(part, { flags: have ? 'a' : 'w' });
    onInterrupt(() => progress.stop(), toStdout ? 'interrupted' : `interrupted: ${part} keeps what was received; run the same command again to resume`);
    const onBytes = new Sha1Counter(n => bar.update(have + n, 'download'), hash);
    try {
      await pipeline(res.body, onBytes, sink, { end: !toStdout });
    } catch (err) {
      progress.stop();
      if ((err as NodeJS.ErrnoException).code?.startsWith('E') && (err as NodeJS.ErrnoException).syscall) throw localError(toStdout ? 'standard output' : part, err);
      throw new CliError(EXIT.UNAVAILABLE, `${what}: the download broke off after ${bytes(have + onBytes.bytes)}${toStdout ? '' : `; run the same command again to resume from ${part}`}`, err);
    }
    received = onBytes.bytes;
  }
  progress.stop();
  bar.finish();
  const sha1 = hash.digest('hex');
  if (sha1 !== remote.sha1 || have + received !== remote.size) {
    if (!toStdout) fs.rmSync(part, { force: true });
    throw new CliError(EXIT.INTEGRITY, `${what}: sha1 mismatch: expected ${remote.sha1}, got ${sha1} (${bytes(have + received)} of ${bytes(remote.size)})${toStdout ? '' : '; the partial file was removed'}`);
  }
  if (!toStdout) {
    try {
      fs.renameSync(part, out);
    } catch (err) {
      throw localError(out, err);
    }
  }
  const ms = Date.now() - started;
  const result = { file: toStdout ? '-' : out, name: remote.name, sha1, size: remote.size, mime: remote.mime, resumedFrom: have, received, ms };
  // with -o -, standard output carries the bytes: the result goes to stderr
  const say = (text: string) => (toStdout ? process.stderr : process.stdout).write(`${text}\n`);
  if (opts.json) say(JSON.stringify(result));
  else say(`${result.file}  ${bytes(remote.size)}  sha1 ${sha1} ok  ${rate(received, ms)}${have ? ` (resumed at ${bytes(have)})` : ''}`);
}
