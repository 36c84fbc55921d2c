// The `<hashpart>.narinfo` files of a binary cache, in the layout Nix itself writes and reads.
import path from 'node:path';
import { parseStoreBasename } from '../store/storepath.ts';
import { errorMessage, RelonixError } from '../util/errors.ts';

export interface NarInfo {
  storePath: string;
  url: string;
  compression: string;
  fileHash?: string;
  fileSize?: number;
  /** `sha256:<nix-base32>` */
  narHash: string;
  narSize: number;
  /** basenames, as the file lists them */
  references: string[];
  /** basename of the .drv, when known */
  deriver?: string;
  sigs: string[];
  ca?: string;
}

export function formatNarInfo(n: NarInfo): string {
  const lines = [`StorePath: ${n.storePath}`, `URL: ${n.url}`, `Compression: ${n.compression}`];
  if (n.fileHash) lines.push(`FileHash: ${n.fileHash}`);
  if (n.fileSize !== undefined) lines.push(`FileSize: ${n.fileSize}`);
  lines.push(`NarHash: ${n.narHash}`, `NarSize: ${n.narSize}`, `References: ${[...n.references].sort().join(' ')}`);
  if (n.deriver) lines.push(`Deriver: ${n.deriver}`);
  for (const s of n.sigs) lines.push(`Sig: ${s}`);
  if (n.ca) lines.push(`CA: ${n.ca}`);
  return `${lines.join('\n')}\n`;
}

/** A narinfo that is not one (a line, a field, a hash): what the cache layer reads, not what users give. */
export class NarInfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NarInfoError';
  }
}

/** Parses a narinfo; `where` names it in errors. Unknown fields are ignored, as Nix does. */
export function parseNarInfo(text: string, where = 'narinfo'): NarInfo {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const i = line.indexOf(': ');
    if (i <= 0) throw new NarInfoError(`${where}: malformed line "${line.slice(0, 80)}"`);
    const k = line.slice(0, i);
    const v = line.slice(i + 2);
    if (k === 'Sig') sigs.push(v);
    else fields.set(k, v);
  }
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined || v === '') throw new NarInfoError(`${where}: the ${k} field is missing`);
    return v;
  };
  const num = (k: string, v: string) => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new NarInfoError(`${where}: ${k} "${v}" is not a size`);
    return Number(v);
  };
  const storePath = need('StorePath');
  parseStoreBasename(path.basename(storePath));
  const narHash = need('NarHash');
  if (!narHash.startsWith('sha256:')) throw new NarInfoError(`${where}: NarHash "${narHash}" is not a sha256 hash`);
  const refs = (fields.get('References') ?? '').split(' ').filter(Boolean);
  for (const r of refs) parseStoreBasename(r);
  const fs = fields.get('FileSize');
  return {
    storePath,
    url: need('URL'),
    // Nix reads a missing Compression as bzip2, the format of its first caches
    compression: fields.get('Compression') || 'bzip2',
    fileHash: fields.get('FileHash') || undefined,
    fileSize: fs ? num('FileSize', fs) : undefined,
    narHash,
    narSize: num('NarSize', need('NarSize')),
    references: refs,
    deriver: fields.get('Deriver') && fields.get('Deriver') !== 'unknown-deriver' ? fields.get('Deriver') : undefined,
    sigs,
    ca: fields.get('CA') || undefined,
  };
}

/** What an ed25519 narinfo signature covers (Nix's ValidPathInfo::fingerprint). */
export function fingerprint(n: Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>): string {
  const storeDir = path.dirname(n.storePath);
  const refs = [...n.references].sort().map((r) => `${storeDir}/${r}`);
  return `1;${n.storePath};${n.narHash};${n.narSize};${refs.join(',')}`;
}

/** The narinfo key of a store path: `<32-char hash>.narinfo`. */
export function narInfoKey(storePathOrBasename: string): string {
  return `${parseStoreBasename(path.basename(storePathOrBasename)).hash}.narinfo`;
}

/** A cache's narinfo at `where` (URL/key), parsed; one that is no narinfo is a damaged cache object. */
export function readCachedNarInfo(b: Buffer, where: string): NarInfo {
  try {
    return parseNarInfo(b.toString('utf8'), where);
  } catch (e) {
    throw damagedNarInfo(where, e);
  }
}

/** A narinfo in a cache at `where` (URL/key) that cannot be parsed: where it is, and what is wrong. */
export function damagedNarInfo(where: string, cause: unknown): RelonixError {
  // the parser's own errors name the narinfo already; a store path's do not
  return new RelonixError(cause instanceof NarInfoError ? cause.message : `${where}: ${errorMessage(cause)}`, {
    kind: 'integrity',
    hint: 'the cache holds a damaged narinfo; publish the path to it again (relonix publish replaces it)',
    cause,
  });
}

/** A narinfo fetched under a path's name that describes another path. */
export function narInfoForOtherPath(where: string, described: string, storePath: string): RelonixError {
  return new RelonixError(`${where} describes ${described}, not ${storePath}`, {
    kind: 'integrity',
    hint: 'the cache holds a narinfo under the wrong name; publish the path to it again (relonix publish replaces it)',
  });
}
