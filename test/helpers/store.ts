// Throwaway Nix stores driven by Debian's nix-bin (run as root with NIX_STORE_DIR & co), used as
// the reference implementation the cache code must interoperate with, and the keys caches are
// signed with.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateKey } from '../../src/cache/keys.ts';
import { parseNarInfo } from '../../src/cache/narinfo.ts';
import { type Layout, layout } from '../../src/prefix/layout.ts';
import { fromNixBase32 } from '../../src/store/nixbase32.ts';
import { type Run, requireTool, run } from './tools.ts';

export interface TestStore {
  prefix: string;
  layout: Layout;
  env: NodeJS.ProcessEnv;
  nix(args: string[], bin?: string): string;
  run(bin: string, args: string[]): Run;
}

/** A prefix laid out as relonix lays it out, with a Nix database Debian's nix-store maintains. */
export function makeStore(prefix: string): TestStore {
  requireTool('nix-store');
  const l = layout(prefix);
  mkdirSync(l.confDir, { recursive: true });
  mkdirSync(l.storeDir, { recursive: true });
  writeFileSync(l.confFile, 'sandbox = false\nbuild-users-group =\nsubstituters =\nrequire-sigs = true\n');
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/bin:/bin',
    HOME: prefix,
    USER: 'root',
    NIX_STORE_DIR: l.storeDir,
    NIX_STATE_DIR: l.stateDir,
    NIX_LOG_DIR: l.logDir,
    NIX_CONF_DIR: l.confDir,
  };
  const runHere = (bin: string, args: string[]) => run(bin, args, { env });
  return {
    prefix,
    layout: l,
    env,
    run: runHere,
    nix(args: string[], bin = 'nix-store') {
      const r = runHere(`/usr/bin/${bin}`, args);
      if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout.trim();
    },
  };
}

/**
 * Builds a small closure: a text file, and a directory referring to it (file, symlink, executable).
 * With `nix`, the directory passes for a Nix (bin/nix-store and bin/nix), as `publish --as-nix` asks.
 */
export function buildClosure(s: TestStore, tag = 't', o: { nix?: boolean } = {}): { top: string; leaf: string; all: string[] } {
  const nix = o.nix ? ' cp $out/bin/x $out/bin/nix-store; ln -s nix-store $out/bin/nix;' : '';
  const expr = path.join(s.prefix, `${tag}.nix`);
  writeFileSync(
    expr,
    `let a = builtins.toFile "leaf-${tag}" "hello ${tag}\\n"; in
derivation { name = "${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = ["-c" "export PATH=/usr/bin:/bin; mkdir -p $out/bin $out/share/empty; echo \${a} > $out/ref; ln -s \${a} $out/link; printf '#!/bin/sh\\\\necho hi\\\\n' > $out/bin/x; chmod +x $out/bin/x;${nix} head -c 70000 /dev/urandom > $out/share/blob"]; }
`,
  );
  const top = s.nix(['-r', s.nix([expr], 'nix-instantiate')]);
  const all = s.nix(['-qR', top]).split('\n').sort();
  const leaf = all.find((p) => p !== top)!;
  return { top, leaf, all };
}

/** Debian's `nix store verify` of the cache at `url` against `key`: every path it lists, or `paths`. */
export function verifyCache(s: TestStore, url: string, key: string, paths: string[] = ['--all']): Run {
  return s.run('/usr/bin/nix', ['--extra-experimental-features', 'nix-command', 'store', 'verify', '--store', url, '--trusted-public-keys', key, ...paths]);
}

export function storeEntries(s: TestStore): string[] {
  return existsSync(s.layout.storeDir) ? readdirSync(s.layout.storeDir).sort() : [];
}

export function isValid(s: TestStore, p: string): boolean {
  return s.run('/usr/bin/nix-store', ['--check-validity', p]).status === 0;
}

/**
 * A new signing key named `name`, its secret written to `file` (owned by `uid` when given, for a
 * user's relonix to read): what `--secret-key` takes.
 */
export async function writeKey(file: string, name: string, uid?: number): Promise<{ secret: string; public: string }> {
  const k = generateKey(name);
  await fs.writeFile(file, k.secret);
  if (uid !== undefined) await fs.chown(file, uid, uid);
  return k;
}

/**
 * Every narinfo in a cache directory names a NAR that is there, complete (FileHash checks out), and
 * references only paths whose narinfos are there too: a reader never finds a path it cannot serve.
 */
export async function assertConsistent(dir: string): Promise<number> {
  let n = 0;
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return 0;
  }
  for (const f of names.filter((x) => x.endsWith('.narinfo'))) {
    const ni = parseNarInfo(await fs.readFile(path.join(dir, f), 'utf8'));
    const nar = await fs.readFile(path.join(dir, ni.url));
    assert.equal(nar.length, ni.fileSize, `${f}: NAR ${ni.url} is partial`);
    assert.ok(
      createHash('sha256')
        .update(nar)
        .digest()
        .equals(fromNixBase32(ni.fileHash!.slice(7), 32)),
      `${f}: NAR hash`,
    );
    for (const r of ni.references) assert.ok(names.includes(`${r.slice(0, 32)}.narinfo`), `${f} names ${r}, whose narinfo is not there`);
    n++;
  }
  return n;
}

/**
 * The journal a prefix's Nix database says it has, read from its header as SQLite documents it
 * (bytes 18 and 19, the file format's write and read versions: 2 in WAL mode, 1 in rollback mode).
 */
export async function databaseJournal(prefix: string): Promise<string> {
  const head = (await fs.readFile(path.join(prefix, 'var/nix/db/db.sqlite'))).subarray(0, 20);
  assert.equal(head.toString('latin1', 0, 16), 'SQLite format 3\0', 'a SQLite database');
  if (head[18] === 2 && head[19] === 2) return 'wal';
  return head[18] === 1 && head[19] === 1 ? 'rollback' : `versions ${head[18]} ${head[19]}`;
}

/** The use-sqlite-wal lines of a nix.conf. */
export const walLines = (conf: string): string[] => conf.split('\n').filter((l) => l.startsWith('use-sqlite-wal'));
