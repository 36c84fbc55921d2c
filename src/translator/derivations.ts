// Which derivation has a given output: when Nix asks a substituter for an output path, it has
// already instantiated the derivation, so its `.drv` is in the store. Every `.drv` file is read
// once (a `.drv` never changes: its name is its content); the store dir is listed again only when
// a hash is asked for that no known derivation has.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { type Derivation, parseDerivation } from '../store/aterm.ts';
import { parseStoreBasename } from '../store/storepath.ts';
import { checkSupported } from '../translate/modulo.ts';
import { RelonixError } from '../util/errors.ts';
import { pool } from '../util/pool.ts';

export interface OutputOf {
  drvPath: string;
  output: string;
}

export class DerivationIndex {
  private readonly byOutput = new Map<string, OutputOf>();
  private readonly read = new Set<string>();
  private scanning: Promise<void> | undefined;

  constructor(
    private readonly storeDir: string,
    /** hears of every derivation that can have no twin (content-addressed, impure) */
    private readonly untranslatable: (drvPath: string, why: RelonixError) => Promise<void> = async () => undefined,
  ) {}

  /** The derivation whose output has the hash part `hash`, or undefined when the store has none. */
  async find(hash: string): Promise<OutputOf | undefined> {
    const known = this.byOutput.get(hash);
    if (known) return known;
    // asks at the same moment share one listing
    this.scanning ??= this.scan().finally(() => {
      this.scanning = undefined;
    });
    await this.scanning;
    return this.byOutput.get(hash);
  }

  private async scan(): Promise<void> {
    const fresh = (await fs.readdir(this.storeDir).catch(() => [] as string[])).filter((n) => n.endsWith('.drv') && !this.read.has(n));
    await pool(fresh, 32, async (name) => {
      const drvPath = path.join(this.storeDir, name);
      try {
        const drv = parseDerivation(await fs.readFile(drvPath));
        for (const o of drv.outputs) if (o.path) this.byOutput.set(parseStoreBasename(path.basename(o.path)).hash, { drvPath, output: o.name });
        this.read.add(name);
        const why = unsupported(drv, drvPath);
        if (why) await this.untranslatable(drvPath, why);
      } catch {
        // Nix writes a .drv in place: one being written is read again at the next listing
      }
    });
  }
}

/** Why `drv` can have no twin, or undefined when it can (as far as it alone tells). */
function unsupported(drv: Derivation, drvPath: string): RelonixError | undefined {
  try {
    checkSupported(drv, drvPath);
    return undefined;
  } catch (e) {
    if (e instanceof RelonixError) return e;
    throw e;
  }
}
