// The options several commands share, worded and parsed once so their --help and their refusals
// never disagree: a count (--jobs), seconds (--wait, build's --grace) and durations (gc's --grace)
// each have one rule here, for every command that takes them.
import type { Command } from 'commander';
import { DEFAULT_PREFIX } from '../prefix/layout.ts';
import { emit } from '../util/emit.ts';
import { RelonixError } from '../util/errors.ts';

export const PREFIX_HELP = `the prefix (default $RELONIX_PREFIX, else ${DEFAULT_PREFIX})`;

export const HEADER_HELP = "extra HTTP header 'Name: value' (repeatable)";

/** commander's argument parser for an option given more than once: every value, in order. */
export const repeatable = (v: string, prev: string[]): string[] => [...prev, v];

/** An option's value that breaks its rule: the option, the value as given, the rule, an example. */
export function badOptionValue(option: string, value: string, rule: string, example: string): RelonixError {
  return new RelonixError(`${option} takes ${rule}, got ${JSON.stringify(value)}`, { kind: 'usage', hint: `for example ${option} ${example}` });
}

/** An environment variable's value that breaks its rule: the variable, the value as set, the rule, an example. */
export function badEnvironmentValue(name: string, value: string, rule: string, example: string): RelonixError {
  return new RelonixError(`${name} must be ${rule}, got ${JSON.stringify(value)}`, { kind: 'usage', hint: `for example ${name}=${example}` });
}

/** The most of anything relonix does at once: more is a typo, not a plan. */
const MAX_COUNT = 1024;

/** commander's parser for a count of at least 1 (--jobs): 0, -3, 2.5, abc and an empty value are refused. */
export function countOption(option: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1 || n > MAX_COUNT) {
      throw badOptionValue(option, v, `a whole number from 1 to ${MAX_COUNT}`, '4');
    }
    return n;
  };
}

/** commander's parser for a number of seconds, 0 or more (fractions allowed): --wait, build's --grace. */
export function secondsOption(option: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\s*\d+(\.\d+)?\s*$/.test(v) || !Number.isFinite(n)) throw badOptionValue(option, v, 'a number of seconds, 0 or more', '30');
    return n;
  };
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Pure: `90`, `90s`, `30m`, `1h`, `1h30m`, `2d`, `1w` as seconds; undefined when it is none of those. */
export function durationSeconds(v: string): number | undefined {
  const text = v.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  if (!/^(\d+(\.\d+)?[smhdw])+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)([smhdw])/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return Number.isFinite(total) ? total : undefined;
}

/** commander's parser for a duration (gc's --grace): seconds, or a number with s, m, h, d or w. */
export function durationOption(option: string): (v: string) => number {
  return (v) => {
    const n = durationSeconds(v);
    if (n === undefined) throw badOptionValue(option, v, 'a duration: seconds, or a number with s, m, h, d or w (90s, 30m, 1h30m, 2d)', '2h');
    return n;
  };
}

/**
 * relonix's own options among the arguments a command hands on to a Nix program: they come after
 * `--` (or after the first option relonix does not know), so the program gets them, not relonix.
 * Said once each, on stderr (and as a warning event with --json), since they are almost always
 * meant for relonix; the arguments themselves are passed on unchanged.
 */
export function warnOwnOptionsPassedOn(cmd: Command, args: string[], program: string, json = false): void {
  const own = new Set(cmd.options.map((o) => o.long).filter((l): l is string => !!l));
  const seen = new Set<string>();
  for (const a of args) {
    const name = a.split('=')[0]!;
    if (!own.has(name) || seen.has(name)) continue;
    seen.add(name);
    const text = `${name} comes after ${program}'s arguments begin (after -- or the first option relonix does not know), so ${program} gets it, not relonix: put relonix's options first`;
    if (json) emit({ event: 'warning', text });
    else process.stderr.write(`relonix: warning: ${text}\n`);
  }
}

/** Whether the command's arguments came after a `--` (commander drops it; its untyped rawArgs still hold it). */
export function cameAfterDashes(cmd: Command, name: string): boolean {
  const raw = (cmd.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? [];
  return raw.indexOf('--') > raw.indexOf(name);
}
