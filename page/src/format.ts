const UNITS = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ];

/** 1536 → "1.5 KiB", 52428800 → "50 MiB". */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const digits = u === 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${Number(v.toFixed(digits))} ${UNITS[u]}`;
}

export function formatSpeed(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** 75 → "1 min 15 s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Bytes per second over the last few seconds of progress, so a stall or a
 * burst shows soon and the time left does not jump with every event.
 */
export class SpeedMeter {
  private samples: Array<[ number, number ]> = [];

  constructor(private readonly windowMs = 5000) {}

  add(bytes: number, now = performance.now()): void {
    this.samples.push([ now, bytes ]);
    while (this.samples.length > 2 && now - this.samples[0][0] > this.windowMs) this.samples.shift();
  }

  reset(): void {
    this.samples = [];
  }

  /** bytes per second, or undefined while there is too little to tell */
  speed(): number | undefined {
    if (this.samples.length < 2) return undefined;
    const [ t0, b0 ] = this.samples[0];
    const [ t1, b1 ] = this.samples[this.samples.length - 1];
    if (t1 - t0 < 300) return undefined;
    return Math.max(0, (b1 - b0) / ((t1 - t0) / 1000));
  }
}
