// Throwaway Nix stores driven by Debian's nix-bin (run as root with NIX_STORE_DIR & co), used as
// the reference implementation the cache code must interoperate with.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync, chmodSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { layout, type Layout } from '../src/prefix/layout.ts';
import { removeTree } from '../src/util/fs.ts';

export function requireTool(bin: string): string {
  for (const d of ['/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    const p = path.join(d, bin);
    if (existsSync(p)) return p;
  }
  throw new Error(`${bin} is not installed; the cache tests need it (apt-get install nix-bin nginx-light xz-utils python3-botocore)`);
}

export interface TestStore {
  prefix: string;
  layout: Layout;
  env: NodeJS.ProcessEnv;
  nix(args: string[], bin?: string): string;
  run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string };
}

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `relonix-${tag}-`));
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
  const run = (bin: string, args: string[]) => {
    const r = spawnSync(bin, args, { env, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    prefix,
    layout: l,
    env,
    run,
    nix(args: string[], bin = 'nix-store') {
      const r = run(`/usr/bin/${bin}`, args);
      if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout.trim();
    },
  };
}

/** Builds a small closure: a text file, and a directory referring to it (file, symlink, executable). */
export function buildClosure(s: TestStore, tag = 't'): { top: string; leaf: string; all: string[] } {
  const expr = path.join(s.prefix, `${tag}.nix`);
  writeFileSync(
    expr,
    `let a = builtins.toFile "leaf-${tag}" "hello ${tag}\\n"; in
derivation { name = "${tag}"; system = builtins.currentSystem; builder = "/bin/sh";
  args = ["-c" "export PATH=/usr/bin:/bin; mkdir -p $out/bin $out/share/empty; echo \${a} > $out/ref; ln -s \${a} $out/link; printf '#!/bin/sh\\\\necho hi\\\\n' > $out/bin/x; chmod +x $out/bin/x; head -c 70000 /dev/urandom > $out/share/blob"]; }
`,
  );
  const top = s.nix(['-r', s.nix([expr], 'nix-instantiate')]);
  const all = s.nix(['-qR', top]).split('\n').sort();
  const leaf = all.find((p) => p !== top)!;
  return { top, leaf, all };
}

export async function wipe(prefix: string): Promise<void> {
  await removeTree(prefix);
}

export function storeEntries(s: TestStore): string[] {
  return existsSync(s.layout.storeDir) ? readdirSync(s.layout.storeDir).sort() : [];
}

export function isValid(s: TestStore, p: string): boolean {
  return s.run('/usr/bin/nix-store', ['--check-validity', p]).status === 0;
}

export { execFileSync, chmodSync };
