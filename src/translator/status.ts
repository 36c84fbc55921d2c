// What relonix status shows of the translator: whether the prefix has one (and why not), whether it
// runs, what it translated (the file cache), and what it refused or could not translate.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseNarInfo } from '../cache/narinfo.ts';
import type { Layout } from '../prefix/layout.ts';
import { pool } from '../util/pool.ts';
import { redactText, redactUrl } from '../util/redact.ts';
import { runningServer } from './client.ts';
import { readTranslatorConfig, substituterUrl, translatorFiles } from './config.ts';
import { readRecord, type TranslatorRecord } from './notes.ts';

export interface TranslatorStatus {
  /** set up at bootstrap; when not, `off` says why */
  enabled: boolean;
  off?: string;
  upstreams: string[];
  url?: string;
  running?: { pid: number; port: number };
  /** what the file cache holds: translated paths and their NAR bytes */
  translated: { paths: number; bytes: number };
  refused: TranslatorRecord['refused'];
  /** derivations without a twin, counted by reason */
  untranslatable: Record<string, number>;
  unreachable: TranslatorRecord['unreachable'];
  compressed: TranslatorRecord['compressed'];
}

async function translated(cacheDir: string): Promise<{ paths: number; bytes: number }> {
  const names = (await fs.readdir(cacheDir).catch(() => [] as string[])).filter((n) => n.endsWith('.narinfo'));
  const sizes = await pool(names, 32, async (n) => {
    try {
      return parseNarInfo(await fs.readFile(path.join(cacheDir, n), 'utf8')).narSize;
    } catch {
      return 0;
    }
  });
  return { paths: names.length, bytes: sizes.reduce((a, b) => a + b, 0) };
}

export async function translatorStatus(l: Layout): Promise<TranslatorStatus> {
  const f = translatorFiles(l);
  const c = await readTranslatorConfig(l).catch(() => undefined);
  const record = await readRecord(f);
  const common = {
    translated: await translated(f.cache),
    refused: record.refused,
    untranslatable: Object.fromEntries(Object.entries(record.untranslatable).map(([why, drvs]) => [why, drvs.length])),
    unreachable: record.unreachable,
    compressed: record.compressed,
  };
  if (!c) {
    const off = (await fs.readFile(f.off, 'utf8').catch(() => '')).trim() || 'not set up: run relonix bootstrap';
    return { enabled: false, off, upstreams: [], ...common };
  }
  // the config (in a directory only the user reads) keeps an upstream's credentials; what is shown never does
  return { enabled: true, upstreams: c.upstreams.map((u) => redactUrl(u.url)), url: substituterUrl(c), running: await runningServer(f), ...common };
}

/** The lines relonix status prints. */
export function translatorLines(t: TranslatorStatus, mib: (n: number) => string): string[] {
  if (!t.enabled) return [`upstream   none: ${t.off}`];
  const out = [`upstream   ${t.upstreams.join(', ')}, translated on demand`];
  out.push(
    `translator ${t.running ? `running (pid ${t.running.pid}) at ${t.url}` : `stopped (a Nix command through the bin/ wrappers starts it) at ${t.url}`}`,
  );
  out.push(`  ${t.translated.paths} paths translated and kept (${mib(t.translated.bytes)} of NARs)`);
  for (const [url, u] of Object.entries(t.unreachable)) out.push(`  ${redactUrl(url)} could not be reached at ${u.at}: ${redactText(u.why)}`);
  const untranslatable = Object.entries(t.untranslatable);
  if (untranslatable.length) out.push(`  not translated (Nix builds them): ${untranslatable.map(([why, n]) => `${n} ${why}`).join('; ')}`);
  const compressed = Object.entries(t.compressed);
  if (compressed.length)
    out.push(
      `  ${compressed.length} translated paths keep upstream's store dir inside compressed files: ${compressed.map(([p, files]) => `${path.basename(p)} (${files.join(', ')})`).join('; ')}`,
    );
  if (t.refused.length) out.push(`  refused (Nix built them instead), newest last:`);
  for (const r of t.refused.slice(-10)) out.push(`    ${r.path}: ${r.why}`);
  return out;
}
