// The translator's file cache: a binary cache directory for the prefix's store dir, where every
// translation is kept, its NAR first and its narinfo last. Nothing is synced to disk: what is kept
// is checked when it is used again (the narinfo reads, describes its path, and its NAR is there with
// the size it gives; Nix checks the NAR's hash itself), and what a crash left unusable is dropped
// and translated again. A NAR is staged beside its place and renamed there once its source checked
// out, so a NAR in the cache is always whole.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type SecretKey, signNarInfo } from '../cache/keys.ts';
import { formatNarInfo, narInfoKey, parseNarInfo } from '../cache/narinfo.ts';
import { type PublishItem, stagedNarInfo } from '../cache/publish.ts';
import { stageNarStream } from '../cache/staged-nar.ts';
import { clearTemps, tempSibling, writeFileAtomic } from '../util/fs.ts';

export class FileCache {
  private readonly nars: string;

  constructor(
    readonly dir: string,
    private readonly key: SecretKey,
  ) {
    this.nars = path.join(dir, 'nar');
  }

  /** Clears what a killed translator was staging; only one runs per prefix, and it calls this first. */
  async open(): Promise<void> {
    await fs.mkdir(this.nars, { recursive: true });
    await clearTemps(this.nars);
  }

  narFile(name: string): string {
    return path.join(this.nars, name);
  }

  /** The kept narinfo of the path with hash part `hash`, when it and its NAR are whole; a broken one is dropped. */
  async narinfo(hash: string): Promise<Buffer | undefined> {
    const file = path.join(this.dir, `${hash}.narinfo`);
    const text = await fs.readFile(file).catch(() => undefined);
    if (!text) return undefined;
    try {
      const ni = parseNarInfo(text.toString('utf8'), file);
      const st = await fs.stat(path.join(this.dir, ni.url));
      if (narInfoKey(ni.storePath) === `${hash}.narinfo` && st.size === ni.fileSize) return text;
    } catch {
      // unreadable, or its NAR is gone: translated again below
    }
    await fs.rm(file, { force: true });
    return undefined;
  }

  /** Stages the item's NAR, lets the item refuse it, then keeps NAR and signed narinfo. */
  async keep(item: PublishItem): Promise<void> {
    const tmp = tempSibling(path.join(this.nars, 'staging'));
    let ni: ReturnType<typeof stagedNarInfo>;
    try {
      const staged = await stageNarStream(item.nar(), 'none', tmp);
      ni = stagedNarInfo(item, staged, 'none', (await item.accept(staged)).ca);
      await fs.rename(tmp, path.join(this.dir, ni.url));
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    const text = formatNarInfo({ ...ni, sigs: [signNarInfo(ni, this.key)] });
    await writeFileAtomic(path.join(this.dir, narInfoKey(item.path)), text, 0o644, { storeContent: true });
  }
}
