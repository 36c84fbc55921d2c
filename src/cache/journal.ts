// NARs a publish has uploaded whose narinfos it has not written yet (a publish that commits at its
// end). A run killed in that window finds here what it already did: the narinfo it would have
// written, kept only while the NAR it names is in the cache and came from the same source.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseStoreBasename } from '../store/storepath.ts';
import { readJson, writeFileAtomic } from '../util/fs.ts';
import type { NarInfo } from './narinfo.ts';

interface Entry {
  /** what the NAR was made from: the same path from another source is another NAR */
  source: string;
  narInfo: NarInfo;
}

export class Journal {
  constructor(readonly dir: string) {}

  private file(storePath: string): string {
    return path.join(this.dir, `${parseStoreBasename(path.basename(storePath)).hash}.json`);
  }

  /** The unsigned narinfo recorded for `storePath` from `source`, if any. */
  async get(storePath: string, source: string): Promise<NarInfo | undefined> {
    const e = await readJson<Entry>(this.file(storePath)).catch(() => undefined);
    return e && e.source === source && e.narInfo.storePath === storePath ? e.narInfo : undefined;
  }

  async put(source: string, narInfo: NarInfo): Promise<void> {
    await writeFileAtomic(this.file(narInfo.storePath), JSON.stringify({ source, narInfo } satisfies Entry));
  }

  /** Once the narinfo is in the cache, the cache itself says the path is done. */
  async drop(storePath: string): Promise<void> {
    await fs.rm(this.file(storePath), { force: true });
  }
}
