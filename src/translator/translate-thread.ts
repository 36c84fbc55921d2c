// One translation, whole, on a thread of the translator's own: upstream's NAR fetched, decoded,
// rewritten, hashed and staged in the file cache, all where the bytes are. Only the job (the plan
// of one path) goes in and only the result (hashes, sizes, what the rewrite noticed) comes out:
// moving a NAR's bytes between threads costs more than the thread saves. The main thread keeps
// what must be done once per translator (closures, twins, signatures, the narinfo it serves).
import type { MessagePort } from 'node:worker_threads';
import type { CacheTarget } from '../cache/target.ts';
import { openTarget } from '../cache/targets.ts';
import type { Layout } from '../prefix/layout.ts';
import { type ItemContext, translatedItem } from '../translate/item.ts';
import type { TranslateItem } from '../translate/plan.ts';
import type { CompressedFile } from '../translate/rewrite.ts';
import { errorMessage, isKind } from '../util/errors.ts';
import { writeNar } from './keep.ts';

export interface ThreadJob {
  id: number;
  layout: Layout;
  upstream: { url: string; storeDir: string };
  item: TranslateItem;
  /** where to stage the NAR (it must not exist); the main thread renames it, or removes it */
  file: string;
}

export interface Staged {
  narHash: Uint8Array;
  narSize: number;
}

export type ThreadReply =
  | { id: number; ok: true; staged: Staged; ca?: string; compressed: CompressedFile[] }
  /** `integrity`: upstream sent something other than what it signed (a refusal, not a failure) */
  | { id: number; ok: false; message: string; integrity: boolean };

/** Runs jobs as they come, each on its own; several interleave while they wait on the network. */
export async function serveTranslate(port: MessagePort): Promise<void> {
  const targets = new Map<string, CacheTarget>();
  const target = (url: string) => {
    const t = targets.get(url) ?? openTarget(url);
    targets.set(url, t);
    return t;
  };
  port.on('message', (job: ThreadJob) => {
    void translateJob(job, target(job.upstream.url)).then((r) => port.postMessage(r));
  });
}

async function translateJob(job: ThreadJob, target: CacheTarget): Promise<ThreadReply> {
  const ctx: ItemContext = {
    layout: job.layout,
    upstream: { target, storeDir: job.upstream.storeDir, keys: [] },
    compressed: new Map(),
    streamed: true,
    // no xz process: a fork copies the page tables of the translator's 180 MB, and every page the
    // translator writes afterwards faults once more (copy on write). On a VM where a fault costs 10-15
    // µs, a first install of bench:substitute's closure took 4.8 s with the host's xz past
    // IN_PROCESS_BYTES and 2.65 s without (translator 142 thousand faults and 7.1 s of CPU, its xz's
    // included, against 37 thousand and 3.3 s); where faults are cheap it was within the noise
    xzHere: true,
    // what a rewrite holds back past its memory goes in the prefix, not in a /tmp that may be small
    spool: { tmpDir: job.layout.translatorDir },
  };
  try {
    const item = translatedItem(ctx, job.item);
    const staged = await writeNar(item.nar(), job.file, item.hashed?.bind(item));
    const { ca } = await item.accept(staged);
    return {
      id: job.id,
      ok: true,
      staged: { narHash: staged.narHash, narSize: staged.narSize },
      ...(ca ? { ca } : {}),
      compressed: ctx.compressed.get(job.item.path) ?? [],
    };
  } catch (e) {
    return { id: job.id, ok: false, message: errorMessage(e), integrity: isKind(e, 'integrity') };
  }
}
