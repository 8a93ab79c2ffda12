import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Context } from 'egg';
import { NotFoundError } from '../../../lib';

/**
 * The upload page's scripts and style, bundled by scripts/build-page.js into
 * page/dist of the package (dist/page/dist in a build of the demo): beside
 * app/ wherever this file runs from. Their names carry a content hash, so
 * browsers may keep them for a year.
 */
export const PAGE_DIST = path.join(__dirname, '..', '..', '..', 'page', 'dist');

/** The entries the page needs, as named in the build's manifest.json. */
export const PAGE_ENTRIES = [ 'page.js', 'hash-worker.js', 'page.css' ] as const;
export type PageEntry = typeof PAGE_ENTRIES[number];

interface Asset {
  body: Buffer;
  /** the body gzipped, when that is smaller */
  gzip: Buffer | undefined;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

export class PageAssets {
  private constructor(
    /** entry (page.js) → file name (page-5XQ2.js) */
    readonly names: Record<PageEntry, string>,
    private readonly files: Map<string, Asset>,
  ) {}

  /**
   * Reads the build in `dir` into memory (a few hundred KiB), or says why it
   * cannot: missing or incomplete, as in a checkout where scripts/build-page.js
   * has not run.
   */
  static load(dir = PAGE_DIST): PageAssets | string {
    let manifest: Record<string, string>;
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    } catch (err) {
      return `no build of the page in ${dir} (${(err as Error).message}); run \`node scripts/build-page.js\``;
    }
    const files = new Map<string, Asset>();
    for (const entry of PAGE_ENTRIES) {
      const name = manifest[entry];
      if (typeof name !== 'string' || path.basename(name) !== name) return `${dir}/manifest.json names no file for ${entry}`;
      let body: Buffer;
      try {
        body = fs.readFileSync(path.join(dir, name));
      } catch (err) {
        return `the page's ${entry} is missing: ${(err as Error).message}`;
      }
      const gzip = zlib.gzipSync(body, { level: 9 });
      files.set(name, {
        body,
        gzip: gzip.length < body.length ? gzip : undefined,
        type: TYPES[path.extname(name)] ?? 'application/octet-stream',
        etag: `"${createHash('sha1').update(body).digest('base64url').slice(0, 20)}"`,
      });
    }
    return new PageAssets(manifest as Record<PageEntry, string>, files);
  }

  /** GET/HEAD of one file: cached for good (its name changes with its content), gzipped when the client takes it. */
  serve(ctx: Context, name: string): void {
    const asset = this.files.get(name);
    if (!asset) throw new NotFoundError('NO_SUCH_ASSET', `the upload page has no file ${name}`);
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
    ctx.set('ETag', asset.etag);
    ctx.vary('Accept-Encoding');
    ctx.type = asset.type;
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    if (asset.gzip && ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
      ctx.set('Content-Encoding', 'gzip');
      ctx.body = asset.gzip;
    } else {
      ctx.body = asset.body;
    }
  }
}
