// The one way relonix runs work on another thread: a worker that loads relonix itself and runs one
// named job of src/worker.ts. In a package, the bundle's entry starts the job when it is loaded in
// a worker; in a checkout running its sources, the worker registers tsx and loads the
// entry from the sources. A worker computes and hands back what it computed; the one file a job may
// write is one its caller named and owns (a translation's staged NAR), so a NAR's bytes never cross.
import { Worker } from 'node:worker_threads';
import { bundleEntry } from './self.ts';

/** What a worker is told: the job, and the job's own data. */
export interface ThreadData {
  relonixJob: string;
  [k: string]: unknown;
}

export function startThread(job: string, data: Record<string, unknown> = {}): Worker {
  const workerData: ThreadData = { ...data, relonixJob: job };
  // the bundle: its entry runs the job in a worker
  const entry = bundleEntry();
  if (entry) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const worker = new URL('../worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
