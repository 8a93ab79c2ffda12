import { EXIT } from './errors';

type Hook = () => unknown;

const hooks = new Set<Hook>();
let message = 'interrupted';
let installed = false;

/**
 * Ctrl-C (SIGINT): the hooks stop what is in flight (an upload keeps its
 * URL in the resume file, a download its partial file), then the process
 * exits 130 with `message`. A second Ctrl-C exits at once.
 */
export function onInterrupt(hook: Hook, say?: string): () => void {
  if (say) message = say;
  if (!installed) {
    installed = true;
    let stopping = false;
    process.on('SIGINT', () => {
      if (stopping) process.exit(EXIT.INTERRUPTED);
      stopping = true;
      const all = [ ...hooks ].map(h => Promise.resolve().then(h).catch(() => undefined));
      // a hook that hangs (a socket that will not close) does not hold the exit
      const timeout = new Promise(r => setTimeout(r, 1000).unref());
      Promise.race([ Promise.all(all), timeout ]).finally(() => {
        process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}sonofs: ${message}\n`);
        process.exit(EXIT.INTERRUPTED);
      });
    });
  }
  hooks.add(hook);
  return () => hooks.delete(hook);
}
