/** Polls until `fn` returns something truthy, or fails naming `what`. */
export async function until<T>(what: string, fn: () => T | undefined | false | null | Promise<T | undefined | false | null>, ms = 10_000, every = 20): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise(r => setTimeout(r, every));
  }
}
