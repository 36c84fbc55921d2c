// The one way relonix runs work on another thread: a worker that loads relonix itself and runs one
// named job of src/worker.ts. In a package, relonix is one bundle, which starts the job when it is
// loaded in a worker; in a checkout running its sources, the worker registers tsx and loads the
// entry from the sources. A worker writes no file: it computes, and hands back what it computed.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** What a worker is told: the job, and the job's own data. */
export interface ThreadData {
  relonixJob: string;
  [k: string]: unknown;
}

export function startThread(job: string, data: Record<string, unknown> = {}): Worker {
  const workerData: ThreadData = { ...data, relonixJob: job };
  const self = fileURLToPath(import.meta.url);
  // the bundle: it is the whole of relonix, and its entry runs the job in a worker
  if (!self.endsWith('.ts')) return new Worker(self, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('../worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
