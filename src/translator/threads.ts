// The translator's threads: one per core, started when the first translation is due (a command
// whose paths are all kept pays for none), each running several translations at once. A thread that
// dies fails the translations it had (Nix builds those paths) and the next ones start a new one.
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startThread } from '../util/thread.ts';
import type { ThreadJob, ThreadReply } from './translate-thread.ts';

interface Thread {
  worker: Worker;
  jobs: Map<number, (r: ThreadReply) => void>;
}

export class TranslateThreads {
  private readonly threads: Thread[] = [];
  private next = 1;

  constructor(private readonly size = os.availableParallelism()) {}

  /** Starts the threads ahead of their first job: each loads relonix, which takes a while. */
  warm(): void {
    while (this.threads.length < this.size) this.start();
  }

  /** Runs the job on the least busy thread; never rejects (a failure is a reply). */
  run(job: Omit<ThreadJob, 'id'>): Promise<ThreadReply> {
    this.warm();
    const t = this.threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    const id = this.next++;
    return new Promise((resolve) => {
      t.jobs.set(id, resolve);
      t.worker.postMessage({ ...job, id } satisfies ThreadJob);
    });
  }

  /** Ends the threads (their jobs fail). */
  async stop(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
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
