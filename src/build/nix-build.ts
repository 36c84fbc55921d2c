// nix-build as relonix build runs it: the user's arguments with relonix's settings around them, and
// its log read as it comes for what it says about the plan and each build starting or failing.

import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Parallelism, UserSettings } from '../host/parallelism.ts';
import { nixToolWontStart } from '../prefix/tools.ts';
import { startPiped } from '../util/spawn.ts';

export interface BuildSettings {
  hook: string;
  cache: string;
  /** every key the cache's narinfos may be signed with (ours first) */
  publicKeys: string[];
  parallelism: Pick<Parallelism, 'cores' | 'maxJobs'>;
  user: UserSettings;
}

/**
 * Pure. relonix's settings come before the user's arguments where the user may override them, and
 * after where they must add to the user's: a --option substituters of theirs would otherwise drop the
 * cache this build fills and reads. Logs stay uncompressed so the uploader sends them as they are.
 */
export function nixBuildArgs(s: BuildSettings): string[] {
  return [
    // the cache fills while this build (and others) read it: a miss must never be remembered
    ...['--option', 'narinfo-cache-negative-ttl', '0'],
    ...(s.user.maxJobs ? [] : ['--max-jobs', String(s.parallelism.maxJobs)]),
    ...(s.user.cores ? [] : ['--cores', String(s.parallelism.cores)]),
    ...s.user.args,
    ...['--option', 'post-build-hook', s.hook],
    ...['--option', 'extra-substituters', s.cache],
    ...['--option', 'extra-trusted-public-keys', s.publicKeys.join(' ')],
    ...['--option', 'compress-build-log', 'false'],
  ];
}

export type NixLogEvent =
  | { kind: 'plan'; drvs: string[]; fetch: number }
  | { kind: 'start'; drv: string }
  /** a build ended well: Nix runs the post-build hook once the outputs are registered */
  | { kind: 'finish' }
  | { kind: 'fail'; drv: string };

/**
 * Reads nix-build's stderr (Nix 2.8's plain log) line by line: `these N derivations will be built:`
 * (or `this derivation …`) and `these N paths will be fetched …:`, each followed by its paths
 * indented by two spaces; `building '….drv'...`; `running post-build-hook '…'...` once a build
 * has succeeded; `error: builder for '….drv' failed …`.
 */
export class NixLogReader {
  private list?: 'build' | 'fetch';
  private drvs: string[] = [];
  private fetch = 0;
  private planned = false;

  line(raw: string): NixLogEvent[] {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escapes Nix colours its lines with are what this strips
    const text = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    const out: NixLogEvent[] = [];
    if (this.list) {
      const m = /^ {2}(\/\S+)$/.exec(text);
      if (m) {
        if (this.list === 'build') this.drvs.push(m[1]!);
        return out;
      }
      this.list = undefined;
    }
    const fetched = /^(?:these (\d+) paths|this path) will be fetched/.exec(text);
    const started = /^building '(\/[^']+\.drv)'/.exec(text);
    const failed = /^error: builder for '(\/[^']+\.drv)' failed/.exec(text);
    if (/^(these \d+ derivations|this derivation) will be built:$/.test(text)) this.list = 'build';
    else if (fetched) {
      this.list = 'fetch';
      this.fetch = fetched[1] ? Number(fetched[1]) : 1;
    } else if (started) out.push(...this.endPlan(), { kind: 'start', drv: started[1]! });
    else if (failed) out.push(...this.endPlan(), { kind: 'fail', drv: failed[1]! });
    else if (/^running post-build-hook /.test(text)) out.push({ kind: 'finish' });
    else if (!this.list && (this.drvs.length || this.fetch)) out.push(...this.endPlan());
    return out;
  }

  /** the plan, once, as soon as what follows it shows it is complete */
  private endPlan(): NixLogEvent[] {
    if (this.planned || (this.drvs.length === 0 && this.fetch === 0)) return [];
    this.planned = true;
    return [{ kind: 'plan', drvs: this.drvs, fetch: this.fetch }];
  }

  /** what is left when the log ends (a plan with nothing after it) */
  end(): NixLogEvent[] {
    return this.endPlan();
  }
}

export interface NixBuild {
  /** what nix-build printed on stdout: the output paths */
  stdout(): string;
  /** its exit status as a shell reports it */
  done: Promise<number>;
  /** asks it to stop: Nix kills its builders and exits */
  stop(): void;
}

export function startNixBuild(bin: string, args: string[], env: NodeJS.ProcessEnv, onLine: (line: string) => void): NixBuild {
  const { child, done } = startPiped(bin, args, env);
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', onLine);
  return {
    stdout: () => out,
    done: done.then((r) => {
      if (r.startError) {
        throw nixToolWontStart(bin, r.startError, `relonix status shows what the prefix holds; ${path.dirname(path.dirname(bin))} may be damaged`);
      }
      return r.code;
    }),
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
