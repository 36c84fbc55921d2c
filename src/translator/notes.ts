// What the translator tells: Nix never says why a substituter answered "not here", so the translator
// says it itself, to the commands running in the prefix: each bin/ wrapper makes a lease named by its
// pid in leases/ (and execs Nix under that pid), a FIFO the command holds open; the translator writes
// what it has to say into the lease of each command asking it (askers.ts), and the relay the
// wrapper left behind (cat) copies it to the command's stderr. A lease is the user's own, where the
// command's stderr may not be (a container runtime's pipe, which the user may not open).
// All of it is kept in record.json for relonix status too.
import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import { readJson, writeFileAtomic } from '../util/fs.ts';
import { redactText } from '../util/redact.ts';
import { askingHolders } from './askers.ts';
import type { TranslatorFiles } from './config.ts';

export interface Refusal {
  path: string;
  why: string;
  at: string;
}

/** What relonix status shows of the translator's work besides the file cache. */
export interface TranslatorRecord {
  /** the last refusals, newest last */
  refused: Refusal[];
  /** derivations that have no twin (content-addressed, impure), by reason: Nix builds them */
  untranslatable: Record<string, string[]>;
  /** upstreams that could not be reached, and when they last failed */
  unreachable: Record<string, { why: string; at: string }>;
  /** translated paths with files whose compressed data names upstream's store: those stay as they were */
  compressed: Record<string, string[]>;
}

const KEEP_REFUSALS = 200;
const KEEP_PER_REASON = 1000;

export function emptyRecord(): TranslatorRecord {
  return { refused: [], untranslatable: {}, unreachable: {}, compressed: {} };
}

export async function readRecord(f: TranslatorFiles): Promise<TranslatorRecord> {
  const r = await readJson<Partial<TranslatorRecord>>(f.record).catch(() => undefined);
  return { ...emptyRecord(), ...r };
}

/** The pids of the commands that hold a lease: the ones whose stderr hears what the translator says. */
export async function leaseHolders(f: TranslatorFiles): Promise<number[]> {
  const names = await fs.readdir(f.leases).catch(() => [] as string[]);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/**
 * Writes `text` into the lease of every command that holds one, or with `port` (the translator's)
 * of each that is asking the translator, when those can be told apart (never making a lease anew).
 * A lease is a FIFO its command's relay reads: opened without waiting, so a lease whose relay has
 * ended (ENXIO) or is full (EAGAIN) is passed over rather than waited on. What it says reaches the
 * command's terminal without the CLI's error printing in between, so it is redacted here as that is.
 */
export async function tellClients(f: TranslatorFiles, said: string, port?: number): Promise<void> {
  const text = redactText(said);
  const holders = await leaseHolders(f);
  const to = (port !== undefined && (await askingHolders(holders, port))) || holders;
  for (const pid of to) {
    const fh = await fs.open(path.join(f.leases, String(pid)), C.O_WRONLY | C.O_APPEND | C.O_NONBLOCK).catch(() => undefined);
    if (!fh) continue;
    await fh.write((await drawsOnTerminal(pid)) ? `${CLEAR_LINE}${text}` : text).catch(() => undefined);
    await fh.close().catch(() => undefined);
  }
}

/**
 * Goes to the start of the line and clears it: where Nix draws its progress bar (a line it redraws
 * in place, on a terminal), a message written after it would carry on the bar's line.
 */
const CLEAR_LINE = '\r\x1b[K';

/**
 * Whether the command's stderr is a terminal Nix may draw on (one whose TERM is not "dumb", as Nix
 * decides it) and that may be sent escape codes (no NO_COLOR or NOCOLOR), from its /proc entries.
 */
async function drawsOnTerminal(pid: number): Promise<boolean> {
  const stderr = await fs.readlink(`/proc/${pid}/fd/2`).catch(() => '');
  if (!/^\/dev\/(pts\/\d+|tty\w*|console)$/.test(stderr)) return false;
  const env = (await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')).split('\0');
  const term = env.find((v) => v.startsWith('TERM='))?.slice(5);
  return !!term && term !== 'dumb' && !env.some((v) => v.startsWith('NO_COLOR=') || v.startsWith('NOCOLOR='));
}

/** The record and the messages, written one at a time. */
export class Notes {
  private record: TranslatorRecord | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** what was said already in this server's life: each thing once */
  private readonly said = new Set<string>();

  /** `port`: the translator's, whose askers hear what it says (every lease holder without it) */
  constructor(
    private readonly f: TranslatorFiles,
    private readonly port?: number,
  ) {}

  private update(change: (r: TranslatorRecord) => void, message?: { key: string; text: string }): Promise<void> {
    const next = this.chain.then(async () => {
      this.record ??= await readRecord(this.f);
      change(this.record);
      await writeFileAtomic(this.f.record, `${JSON.stringify(this.record, null, 2)}\n`);
      if (message && !this.said.has(message.key)) {
        this.said.add(message.key);
        await tellClients(this.f, message.text, this.port);
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** A path upstream has that was refused (a bad signature, a NAR that is not what was signed): Nix builds it. */
  refused(storePath: string, why: string): Promise<void> {
    const text = `relonix: refused ${storePath} from upstream: ${why}\n  Nix builds it instead (its normal fallback); nothing of it reached the store. relonix status lists what was refused.\n`;
    return this.update(
      (r) => {
        r.refused = [...r.refused.filter((x) => x.path !== storePath), { path: storePath, why, at: new Date().toISOString() }].slice(-KEEP_REFUSALS);
      },
      { key: `refused ${storePath} ${why}`, text },
    );
  }

  /**
   * A derivation that cannot have a twin: Nix builds it, and what needs it. Said when a command
   * asks for it; `quiet` only records it (the store's derivations are read before anyone asks).
   */
  untranslatable(drvPath: string, reason: string, quiet = false): Promise<void> {
    const text = `relonix: ${path.basename(drvPath)} is ${reason}: it is not translated, Nix builds it\n`;
    return this.update(
      (r) => {
        const list = r.untranslatable[reason] ?? [];
        if (!list.includes(drvPath)) r.untranslatable[reason] = [...list, drvPath].slice(-KEEP_PER_REASON);
      },
      quiet ? undefined : { key: `untranslatable ${drvPath}`, text },
    );
  }

  /** An upstream that cannot be reached: said once until it answers again. */
  unreachable(url: string, why: string): Promise<void> {
    const text = `relonix: warning: the upstream ${url} cannot be reached (${why}).\n  Nix builds what it would have substituted from it; run the command again once the network is back to get binaries instead.\n`;
    return this.update(
      (r) => {
        r.unreachable[url] = { why, at: new Date().toISOString() };
      },
      { key: `unreachable ${url}`, text },
    );
  }

  /** The upstream answered: a later failure is news again. */
  reachable(url: string): Promise<void> {
    if (!this.said.delete(`unreachable ${url}`) && !this.record?.unreachable[url]) return Promise.resolve();
    return this.update((r) => {
      delete r.unreachable[url];
    });
  }

  /** Files of a translated path whose compressed data still names upstream's store dir. */
  compressed(storePath: string, files: string[]): Promise<void> {
    return this.update((r) => {
      r.compressed[storePath] = files;
    });
  }

  /** Said to the commands as it is, recorded nowhere (how far the translations are). */
  tell(text: string): Promise<void> {
    return tellClients(this.f, text, this.port);
  }

  /** Something unexpected in the translator: Nix builds the path, and the user hears why. */
  failed(what: string, why: string): Promise<void> {
    return tellClients(this.f, `relonix: the translator failed on ${what}: ${why}\n  Nix builds it instead; ${this.f.log} has the details.\n`, this.port);
  }
}

/** A short reason for a derivation that has no twin, from the error that said so. */
export function untranslatableReason(message: string): string {
  const m = / is (an? .*?), which relonix cannot translate/.exec(message);
  // the kind of derivation, without the details of this one: "(__contentAddressed: its output …)"
  return m ? m[1]!.replace(/ \((__\w+):[^)]*\)/, ' ($1)') : message.split(':')[0]!.slice(0, 120);
}
