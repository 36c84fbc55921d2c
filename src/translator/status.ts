// What relonix status shows of the translator: whether the prefix has one (and why not), whether it
// runs, what it translated (the file cache), and what it refused or could not translate.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseNarInfo } from '../cache/narinfo.ts';
import type { Layout } from '../prefix/layout.ts';
import { readJson } from '../util/fs.ts';
import { pool } from '../util/pool.ts';
import { redactText, redactUrl } from '../util/redact.ts';
import { runningServer } from './client.ts';
import { readTranslatorConfig, substituterUrl, translatorFiles } from './config.ts';
import { readRecord, type TranslatorRecord } from './notes.ts';
import { type ProgressState, progressState } from './progress.ts';

export interface TranslatorStatus {
  /** set up at bootstrap; when not, `off` says why */
  enabled: boolean;
  off?: string;
  upstreams: string[];
  url?: string;
  running?: { pid: number; port: number };
  /** translations that have been running a while, as the commands waiting on them were last told */
  now?: ProgressState;
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
  const running = await runningServer(f);
  const now = running && (await readJson<ProgressState & { pid: number }>(f.now).catch(() => undefined));
  // the config (in a directory only the user reads) keeps an upstream's credentials; what is shown never does
  return {
    enabled: true,
    upstreams: c.upstreams.map((u) => redactUrl(u.url)),
    url: substituterUrl(c),
    running,
    // only the running server's: a killed one's last burst is over
    ...(now && now.pid === running.pid ? { now: progressState(now) } : {}),
    ...common,
  };
}

/** The lines relonix status prints (`at`: the time now, for how long the translations have run). */
export function translatorLines(t: TranslatorStatus, mib: (n: number) => string, at = Date.now()): string[] {
  if (!t.enabled) return [`upstream   none: ${t.off}`];
  const out = [`upstream   ${t.upstreams.join(', ')}, translated on demand`];
  out.push(
    `translator ${t.running ? `running (pid ${t.running.pid}) at ${t.url}` : `stopped (a Nix command through the bin/ wrappers starts it) at ${t.url}`}`,
  );
  if (t.now) {
    const n = t.now;
    const secs = Math.max(0, Math.round((at - Date.parse(n.since)) / 1000));
    const failed = n.failed ? `, ${n.failed} of them not translated` : '';
    out.push(`  translating now: ${n.ended} of ${n.asked} paths done${failed} (${mib(n.endedBytes)} of ${mib(n.bytes)}), for ${secs} s`);
  }
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
