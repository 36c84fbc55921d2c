// The translator's threads: one per core, started when the first translation is due (a command
// whose paths are all kept pays for none), each running several translations at once, and ended
// once none has had work for a while (each holds its own copy of relonix and a decoder's memory,
// and the translator itself may run on for minutes). A thread that dies fails the translations it
// had (Nix builds those paths) and the next ones start a new one.
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startThread } from '../util/thread.ts';
import type { ThreadJob, ThreadReply } from './translate-thread.ts';

interface Thread {
  worker: Worker;
  jobs: Map<number, (r: ThreadReply) => void>;
}

/** How long the threads stay without work: a command's closure comes in bursts seconds apart. */
const IDLE_MS = 10_000;

export class TranslateThreads {
  private readonly threads: Thread[] = [];
  private next = 1;
  private idle?: NodeJS.Timeout;

  constructor(
    private readonly size = os.availableParallelism(),
    private readonly idleMs = IDLE_MS,
  ) {}

  /** The threads running now. */
  get running(): number {
    return this.threads.length;
  }

  /** Starts the threads ahead of their first job: each loads relonix, which takes a while. */
  warm(): void {
    while (this.threads.length < this.size) this.start();
    this.settle();
  }

  /** Runs the job on the least busy thread; never rejects (a failure is a reply). */
  run(job: Omit<ThreadJob, 'id'>): Promise<ThreadReply> {
    this.warm();
    clearTimeout(this.idle);
    const t = this.threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.next++;
    return new Promise((resolve) => {
      t.jobs.set(id, resolve);
      t.worker.postMessage({ ...job, id } satisfies ThreadJob);
    });
  }

  /** Ends the threads (their jobs fail). */
  async stop(): Promise<void> {
    clearTimeout(this.idle);
    // out of the list at once: a job that comes while they end goes to new threads
    const ending = this.threads.splice(0);
    await Promise.all(ending.map((t) => t.worker.terminate()));
  }

  /** With no job anywhere, the threads end after idleMs unless work comes first. */
  private settle(): void {
    clearTimeout(this.idle);
    if (this.threads.some((t) => t.jobs.size)) return;
    this.idle = setTimeout(() => void this.stop(), this.idleMs);
    this.idle.unref();
  }

  private start(): void {
    const worker = startThread('translate');
    const t: Thread = { worker, jobs: new Map() };
    // an idle thread must not keep a translator that is done from leaving
    worker.unref();
    worker.on('message', (r: ThreadReply) => {
      const done = t.jobs.get(r.id);
      t.jobs.delete(r.id);
      done?.(r);
      this.settle();
    });
    const gone = (why: string) => {
      const i = this.threads.indexOf(t);
      if (i >= 0) this.threads.splice(i, 1);
      for (const [id, done] of t.jobs) done({ id, ok: false, message: `the translation thread stopped (${why})`, integrity: false });
      t.jobs.clear();
    };
    worker.on('error', (e) => gone(e.message));
    worker.on('exit', (code) => gone(`exit code ${code}`));
    this.threads.push(t);
  }
}
