// The one concurrency limit. `Limit` gates jobs that start as they please (publish: a path's
// upload waits for its turn, its narinfo waits for its references); `pool` maps a list through it.

/** At most `n` jobs run at once; the others wait, in the order they came (an `urgent` one first). */
export class Limit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly n: number;

  constructor(n: number) {
    this.n = Math.max(1, Math.floor(n) || 1);
  }

  async run<T>(fn: () => Promise<T>, urgent = false): Promise<T> {
    if (this.active < this.n) this.active++;
    // the slot is handed over, not freed
    else await new Promise<void>((r) => (urgent ? this.waiting.unshift(r) : this.waiting.push(r)));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * fn over items, at most `n` at a time, results in the items' order. After a failure nothing new
 * starts; the first failure is thrown once the jobs already running have ended.
 */
export async function pool<T, R>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const limit = new Limit(n);
  let failed = false;
  const settled = await Promise.allSettled(
    items.map((item, i) =>
      limit.run(async () => {
        if (failed) return undefined as R;
        try {
          return await fn(item, i);
        } catch (e) {
          failed = true;
          throw e;
        }
      }),
    ),
  );
  const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<R>).value);
}
