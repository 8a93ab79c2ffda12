import type { Position } from './replica-files';

/** Everything in [start, end) is copied: before the position's end and in none of its holes. */
export function covers(p: Position, start: number, end: number): boolean {
  return end <= p.end && !p.holes.some(h => h[0] < end && start < h[1]);
}

/** A writer waiting for a range of its bundle to be copied here. */
interface CopyWaiter {
  bundle: number;
  start: number;
  end: number;
  done(copied: boolean): void;
}

/**
 * The writers waiting on one peer's copy (replication 'all'): each is
 * answered true once a saved position covers its range, false at its timeout
 * or when the copy stops.
 */
export class CopyWaiters {
  private readonly waiting = new Set<CopyWaiter>();
  /** counts waits begun, so a pass knows whether one came while it ran */
  asked = 0;

  wait(bundle: number, start: number, end: number, timeoutMs: number): Promise<boolean> {
    return new Promise(resolve => {
      const waiter: CopyWaiter = {
        bundle, start, end,
        done: copied => {
          clearTimeout(timer);
          this.waiting.delete(waiter);
          resolve(copied);
        },
      };
      const timer = setTimeout(() => waiter.done(false), timeoutMs);
      this.waiting.add(waiter);
      this.asked++;
    });
  }

  /** Tells the writers waiting on a bundle whose range its copy now holds. */
  settle(bundle: number, p: Position): void {
    for (const w of this.waiting) if (w.bundle === bundle && covers(p, w.start, w.end)) w.done(true);
  }

  failAll(): void {
    for (const w of this.waiting) w.done(false);
  }
}
