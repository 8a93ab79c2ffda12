import { MultiBar, SingleBar } from 'cli-progress';
import { bytes, rate } from './format';

/** One file's bar; a no-op when bars are off. */
export interface Bar {
  /** `done` bytes of this phase (sha1, upload, download) */
  update(done: number, phase: string): void;
  /** the file is through: its bar goes, its result line stays */
  finish(): void;
}

const NO_BAR: Bar = { update() {}, finish() {} };

/** Names longer than this are cut in the middle, so bars line up. */
const NAME_WIDTH = 24;

function shortName(name: string): string {
  if ([ ...name ].length <= NAME_WIDTH) return name.padEnd(NAME_WIDTH);
  const chars = [ ...name ];
  const half = (NAME_WIDTH - 1) / 2;
  return `${chars.slice(0, Math.ceil(half)).join('')}…${chars.slice(-Math.floor(half)).join('')}`;
}

/**
 * Progress bars on stderr, one per file and a total, drawn only on a
 * terminal (cli-progress draws nothing when stderr is not one). Result lines
 * go to stdout; while bars are drawn on the same terminal they are printed
 * above the bars instead, so neither garbles the other.
 */
export class Progress {
  private readonly multi: MultiBar | undefined;
  private readonly total: SingleBar | undefined;
  private totalDone = 0;
  private readonly started = Date.now();

  constructor(enabled: boolean, totalBytes?: number, files = 1) {
    if (!enabled || !process.stderr.isTTY) return;
    this.multi = new MultiBar({
      stream: process.stderr,
      hideCursor: true,
      autopadding: true,
      barsize: 24,
      format: '{name} {bar} {percentage}% | {done} / {size} | {speed} | {phase}',
    });
    if (files > 1 && totalBytes !== undefined) {
      this.total = this.multi.create(Math.max(totalBytes, 1), 0, { name: shortName(`total (${files} files)`), done: '0 B', size: bytes(totalBytes), speed: '', phase: '' });
    }
  }

  /** A bar for one file of `size` bytes (undefined: unknown, as standard input). */
  add(name: string, size: number | undefined): Bar {
    if (!this.multi) return NO_BAR;
    const started = Date.now();
    const opts = size === undefined ? { format: '{name} {done} | {speed} | {phase}' } : {};
    const bar = this.multi.create(Math.max(size ?? 1, 1), 0, { name: shortName(name), done: '0 B', size: bytes(size ?? 0), speed: '', phase: 'queued' }, opts as any);
    let last = 0;
    let phaseStarted = started;
    let phase = 'queued';
    return {
      update: (done, now) => {
        if (now !== phase) {
          phase = now;
          phaseStarted = Date.now();
          last = 0;
        }
        if (now !== 'sha1') this.addTotal(done - last);
        last = done;
        bar.update(size === undefined ? 0 : done, { done: bytes(done), speed: rate(done, Date.now() - phaseStarted), phase });
      },
      finish: () => this.multi?.remove(bar),
    };
  }

  /** Bytes of the total that were done without sending them (秒传, a resumed upload's offset). */
  addTotal(n: number): void {
    if (!this.total || n <= 0) return;
    this.totalDone += n;
    this.total.update(this.totalDone, { done: bytes(this.totalDone), speed: rate(this.totalDone, Date.now() - this.started) });
  }

  /** A result line on stdout (or a message on stderr). */
  line(text: string, toStderr = false): void {
    const out = toStderr ? process.stderr : process.stdout;
    if (this.multi && out.isTTY) this.multi.log(`${text}\n`);
    else out.write(`${text}\n`);
  }

  stop(): void {
    this.multi?.stop();
  }
}
