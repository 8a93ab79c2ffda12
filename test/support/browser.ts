import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, BrowserContext, Page, Route } from 'playwright-core';

/** Debian's Chromium, as `npm test` (.ci/services.sh) finds it; a run without it fails, it does not skip. */
export function chromiumPath(): string {
  const exe = process.env.SONOFS_TEST_CHROMIUM;
  if (!exe) throw new Error('SONOFS_TEST_CHROMIUM is not set: run the tests through `npm test`, which finds Chromium');
  return exe;
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** closes the browser and removes its profile */
  close(): Promise<void>;
}

/** Headless Chromium on a new, empty profile; nothing downloaded, nothing phoned home. */
export async function launchChromium(opts: { javaScriptEnabled?: boolean; width?: number } = {}): Promise<TestBrowser> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sonofs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: [ '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync' ],
    javaScriptEnabled: opts.javaScriptEnabled ?? true,
    viewport: { width: opts.width ?? 1000, height: 900 },
    acceptDownloads: true,
  });
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context, page,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A tus request the page sent: which file's upload, and at what offset a PATCH started. */
export interface TusRequestSeen {
  method: string;
  name: string | undefined;
  offset?: number;
}

/** A PATCH of one file held back at an offset, until the test lets it go on or fails it. */
export interface Hold {
  /** resolves with the held PATCH's Upload-Offset */
  reached: Promise<number>;
  release(how: 'continue' | 'abort'): void;
}

interface PendingHold {
  atOffset: number;
  passed: boolean;
  done: boolean;
  reached(offset: number): void;
  released: Promise<string>;
}

function filenameOf(uploadMetadata: string | undefined): string | undefined {
  for (const pair of (uploadMetadata ?? '').split(',')) {
    const [ key, value ] = pair.trim().split(' ');
    if (key === 'filename' && value) return Buffer.from(value, 'base64').toString('utf8');
  }
  return undefined;
}

/**
 * Watches the page's tus requests (by file name, from each creation's
 * metadata) and can hold one file's PATCH at an offset: the test then acts
 * at a known point of that upload (pause, reload, stop the server) without
 * timing anything. Requests are only intercepted while a hold is pending
 * (interception slows every request down); watching costs nothing.
 */
export class TusTraffic {
  readonly seen: TusRequestSeen[] = [];
  private readonly names = new Map<string, string>();
  private readonly holds = new Map<string, PendingHold>();
  private page: Page | undefined;
  private routed = false;
  private readonly matches = (url: URL) => url.pathname === this.tusPath || url.pathname.startsWith(`${this.tusPath}/`);
  private readonly handler = (route: Route) => this.handle(route);

  constructor(private readonly tusPath = '/files') {}

  install(page: Page): void {
    this.page = page;
    page.on('request', req => {
      const url = new URL(req.url());
      if (!this.matches(url)) return;
      const method = req.method();
      const headers = req.headers();
      if (method === 'POST') this.seen.push({ method, name: filenameOf(headers['upload-metadata']) });
      else this.seen.push({ method, name: this.names.get(url.pathname), offset: method === 'PATCH' ? Number(headers['upload-offset']) : undefined });
    });
    page.on('response', res => {
      const req = res.request();
      const location = res.headers().location;
      if (req.method() !== 'POST' || !location || !this.matches(new URL(req.url()))) return;
      const name = filenameOf(req.headers()['upload-metadata']);
      if (name) this.names.set(new URL(location, req.url()).pathname, name);
    });
  }

  /** Holds the first PATCH of `name` at `atOffset` or beyond; set it before the upload starts. */
  async hold(name: string, atOffset: number): Promise<Hold> {
    let reached!: (offset: number) => void;
    let release!: (how: string) => void;
    const hold: PendingHold = {
      atOffset, passed: false, done: false,
      reached: o => reached(o),
      released: new Promise<string>(resolve => (release = resolve)),
    };
    const promise = new Promise<number>(resolve => (reached = resolve));
    this.holds.set(name, hold);
    if (!this.routed) {
      this.routed = true;
      await this.page!.route(this.matches, this.handler);
    }
    return {
      reached: promise,
      release: how => {
        hold.done = true;
        release(how);
        void this.unrouteWhenIdle();
      },
    };
  }

  /** how many uploads the page created for this file */
  creations(name: string): number {
    return this.seen.filter(r => r.method === 'POST' && r.name === name).length;
  }

  /** the Upload-Offset of each PATCH the page sent for this file, in order */
  patchOffsets(name: string): number[] {
    return this.seen.filter(r => r.method === 'PATCH' && r.name === name).map(r => r.offset!);
  }

  private async unrouteWhenIdle(): Promise<void> {
    if (!this.routed || [ ...this.holds.values() ].some(h => !h.done)) return;
    this.routed = false;
    await this.page!.unroute(this.matches, this.handler).catch(() => undefined);
  }

  private async handle(route: Route): Promise<void> {
    const req = route.request();
    const url = new URL(req.url());
    // a creation's answer (its 'response' event) names the upload's URL before its first PATCH can come
    const name = this.names.get(url.pathname);
    const offset = req.method() === 'PATCH' ? Number(req.headers()['upload-offset']) : undefined;
    const hold = name !== undefined && offset !== undefined ? this.holds.get(name) : undefined;
    if (hold && !hold.passed && offset! >= hold.atOffset) {
      hold.passed = true;
      hold.reached(offset!);
      if (await hold.released === 'abort') {
        await route.abort('connectionaborted').catch(() => undefined);
        return;
      }
    }
    // the page may have gone (a reload) or dropped the request (a pause) meanwhile
    await route.continue().catch(() => undefined);
  }
}
