// src/translator/: upstream's binaries (cache.nixos.org by default) for the prefix's own store, on
// demand. A loopback HTTP substituter, named in nix.conf, that the bin/ wrappers start when a Nix
// command runs and that stops when idle: for each narinfo Nix asks for it finds the derivation with
// that output, computes its twin, fetches upstream's narinfo and NAR, checks them, rewrites, signs
// with the prefix's own key and keeps the result in a file cache (config, server, resolve, notes,
// client, setup).
//
// This file: what a prefix's translator is set up with and where its files are.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseSecretKey, type SecretKey } from '../cache/keys.ts';
import type { Layout } from '../prefix/layout.ts';
import { NIXOS_CACHE, NIXOS_KEY } from '../translate/upstream.ts';
import { errnoCode, errorMessage, RelonixError } from '../util/errors.ts';
import { readJson } from '../util/fs.ts';

export interface UpstreamConfig {
  url: string;
  /** public keys, name:base64: a narinfo signed by none of them is refused */
  keys: string[];
}

/** cache.nixos.org and its key: what a prefix translates from unless told otherwise. */
export const DEFAULT_UPSTREAMS: UpstreamConfig[] = [{ url: NIXOS_CACHE, keys: [NIXOS_KEY] }];

export interface TranslatorConfig {
  version: 1;
  storeDir: string;
  /** the loopback port nix.conf names: one per prefix and uid */
  port: number;
  /** the first path segment of the substituter URL, from the prefix's public key */
  id: string;
  upstreams: UpstreamConfig[];
  /** how the wrappers start the server: this node and this relonix */
  node: string;
  entry: string;
}

/** Every file of a prefix's translator. */
export interface TranslatorFiles {
  dir: string;
  config: string;
  secretKey: string;
  publicKey: string;
  /** sourced by the bin/ wrappers: keeps the server running while the command runs */
  ensureScript: string;
  /** what that script runs when no server runs: binds the port and starts the server on it, waiting for nothing */
  quickStart: string;
  /** `PID STARTTIME PORT` of the running server; absent when none runs */
  server: string;
  /** one FIFO per command that needs the server, named by its pid: what the server says to that command goes in */
  leases: string;
  lock: string;
  /** a binary cache for the prefix's store dir: what was translated, kept */
  cache: string;
  /** what was refused and why, and what could not be translated: relonix status reads it */
  record: string;
  /** the server's own output */
  log: string;
  /** how far the translations running now are, while they are said to the commands (a ProgressState and the server's pid) */
  now: string;
  /** why the prefix has no translator, when bootstrap set up none */
  off: string;
}

export function translatorFiles(l: Layout): TranslatorFiles {
  const d = l.translatorDir;
  return {
    dir: d,
    config: path.join(d, 'config.json'),
    secretKey: path.join(d, 'key.secret'),
    publicKey: path.join(d, 'key.public'),
    ensureScript: l.translatorScript,
    quickStart: path.join(d, 'start.mjs'),
    server: path.join(d, 'server'),
    leases: path.join(d, 'leases'),
    lock: path.join(d, 'lock'),
    cache: path.join(d, 'cache'),
    record: path.join(d, 'record.json'),
    log: path.join(d, 'server.log'),
    now: path.join(d, 'now.json'),
    off: path.join(d, 'off'),
  };
}

const PORT_BASE = 12000;
const PORT_SPAN = 20000;

/**
 * The port a prefix's translator asks for first: from the prefix's path and the uid, so two prefixes
 * and two users on one host start apart. Below Linux's ephemeral range (32768 and up), where
 * outgoing connections would take it from us now and then.
 */
export function preferredPort(prefix: string, uid: number): number {
  const h = createHash('sha256').update(`${prefix}\0${uid}`).digest();
  return PORT_BASE + (h.readUInt32BE(0) % PORT_SPAN);
}

/** The n-th port to try after `first`, staying in the range. */
export function nthPort(first: number, n: number): number {
  return PORT_BASE + ((first - PORT_BASE + n) % PORT_SPAN);
}

/** The part of the URL that names this prefix's key: a new key is a new cache to Nix, whose narinfo cache is keyed by URL. */
export function keyId(publicKey: string): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

export function substituterUrl(c: Pick<TranslatorConfig, 'port' | 'id'>): string {
  return `http://127.0.0.1:${c.port}/${c.id}`;
}

/** The translator's config, or undefined when the prefix has none (no upstream, or a store dir of another length). */
export async function readTranslatorConfig(l: Layout): Promise<TranslatorConfig | undefined> {
  // a file that is not JSON is a config this relonix does not read; a system error says itself
  const c = await readJson<TranslatorConfig>(translatorFiles(l).config).catch((e: unknown) => {
    throw errnoCode(e) ? e : badTranslatorConfig(translatorFiles(l).config);
  });
  if (!c) return undefined;
  if (c.version !== 1 || typeof c.port !== 'number' || !Array.isArray(c.upstreams)) {
    throw badTranslatorConfig(translatorFiles(l).config);
  }
  return c;
}

/** A translator config of another version, or damaged. */
export function badTranslatorConfig(file: string): RelonixError {
  return new RelonixError(`${file} is not a translator config this relonix reads`, {
    kind: 'usage',
    hint: 'run relonix bootstrap again: it writes the config anew',
  });
}

/** The translator's secret key file cannot be read (a malformed key is badSecretKey). */
export function translatorKeyUnreadable(file: string, e: unknown): RelonixError {
  return new RelonixError(`the translator's key ${file} cannot be read: ${errorMessage(e)}`, {
    kind: 'failure',
    hint: 'run relonix bootstrap again: it makes the key when there is none',
    cause: e,
  });
}

export async function readTranslatorKey(l: Layout): Promise<SecretKey> {
  const f = translatorFiles(l).secretKey;
  try {
    return parseSecretKey(await fs.readFile(f, 'utf8'));
  } catch (e) {
    if (e instanceof RelonixError) throw e;
    throw translatorKeyUnreadable(f, e);
  }
}

/** What nix.conf needs of the translator, or undefined when the prefix has none. */
export async function translatorSettings(l: Layout): Promise<{ substituter: string; publicKey: string } | undefined> {
  const c = await readTranslatorConfig(l).catch(() => undefined);
  if (!c) return undefined;
  const publicKey = (await fs.readFile(translatorFiles(l).publicKey, 'utf8').catch(() => '')).trim();
  return publicKey ? { substituter: substituterUrl(c), publicKey } : undefined;
}
