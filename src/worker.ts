// A relonix worker thread: runs the job its parent named (src/util/thread.ts starts it). Loaded by
// the bundle's entry when the bundle finds itself in a worker, or by a checkout's worker directly.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { ThreadData } from './util/thread.ts';

const JOBS: Record<string, () => Promise<(port: NonNullable<typeof parentPort>, data: ThreadData) => Promise<void>>> = {
  decode: async () => (await import('./codec/decode-thread.ts')).serveDecode,
  translate: async () => (await import('./translator/translate-thread.ts')).serveTranslate,
};

const data = workerData as ThreadData | undefined;
if (!isMainThread && parentPort && data?.relonixJob) {
  const job = JOBS[data.relonixJob];
  if (!job) throw new Error(`internal error: relonix has no worker job "${data.relonixJob}"`);
  await (await job())(parentPort, data);
}
