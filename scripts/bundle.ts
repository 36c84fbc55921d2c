// Builds relonix into ESM files that need nothing but node, not even a node_modules:
//   dist/relonix.mjs   the whole CLI in one file, with every dependency inside (the xz decoder's
//                      WebAssembly is a data: URL in its JavaScript): what is copied to run elsewhere
//                      (a builder, a prefix's translator, a host with only node). `node relonix.mjs
//                      ARGS` runs it on its own. bin/relonix.js runs the commands that reach most of
//                      relonix from it (status, a bootstrap from a tarball).
//   dist/cli/          the same CLI split where it loads lazily: relonix.mjs holds what every start
//                      needs, chunks/ the layers a command loads when it runs, so a start parses only
//                      what argv needs (node parses a whole file before running any of it). This is
//                      what bin/relonix.js imports for every other command, calling its `main`.
//   dist/patchelf.mjs  the ELF editor alone, which scripts call with hundreds of files, in loops: it
//                      starts faster than the whole CLI.
// All are minified but for names, which stay readable in a stack trace (RELONIX_DEBUG=1).
// prepack runs this, so every npm package carries both; in a checkout `npm run build` does (the
// integration tests build it first), and bin/relonix.js runs the sources while the bundle is stale.
// Each bundle is written with the list of sources it was made from, so that in a checkout the
// launcher can tell a stale bundle from a fresh one.

import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import type { Metafile, Plugin } from 'esbuild';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string; engines?: { node?: string } };

interface Bundle {
  /** the file under dist/ */
  name: string;
  module: string;
  exportName: string;
  /** what the file does when node runs it as the program */
  run: string;
  /** the module that runs a job when the bundle is loaded in a worker thread (src/util/thread.ts) */
  worker?: string;
  /** a folder of chunks loaded as they are needed, rather than one file */
  split?: boolean;
}

const BUNDLES: Bundle[] = [
  {
    name: 'patchelf.mjs',
    module: './src/commands/patchelf.ts',
    exportName: 'runPatchelf',
    run: 'process.exitCode = await runPatchelf(process.argv.slice(2));',
  },
  { name: 'relonix.mjs', module: './src/cli.ts', exportName: 'main', run: 'await main(process.argv);', worker: './src/worker.ts' },
  { name: 'cli/relonix.mjs', module: './src/cli.ts', exportName: 'main', run: 'await main(process.argv);', worker: './src/worker.ts', split: true },
];

// CommonJS dependencies inside an ESM bundle still call require()
const BANNER = `#!/usr/bin/env node
import { createRequire as __relonixRequire } from 'node:module';
const require = __relonixRequire(import.meta.url);`;

/**
 * The bundle's entry: exports the function the launcher calls, and calls it itself only when node
 * was started with this very file (a symlink to it counts), so an import never runs a command. In a
 * worker thread (whose argv is its parent's) it runs the worker's job instead, and never a command.
 * It names itself to the code inside (src/util/self.ts): a chunk's own URL is not the entry's.
 */
function entry(b: Bundle): string {
  // node's modules through the banner's require: imported, each would be a module of the split build
  // that every start loads
  return `const { realpathSync } = require('node:fs');
const { fileURLToPath } = require('node:url');
const { isMainThread } = require('node:worker_threads');
import { ${b.exportName} } from '${b.module}';
export { ${b.exportName} };
globalThis[Symbol.for('relonix.entry')] = import.meta.url;
let program = false;
try {
  program = realpathSync(process.argv[1] ?? '') === fileURLToPath(import.meta.url);
} catch {
  // not started from a file (node -e, a REPL): an import
}
${
  b.worker
    ? `if (!isMainThread) await import('${b.worker}');
else `
    : ''
}if (program && isMainThread) ${b.run}
`;
}

/** The name the generated entry goes by in esbuild's metafile; it is no file of the checkout. */
const ENTRY = '<entry>';

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** A bundle that imports anything but node's own modules would need a node_modules beside it. */
function foreignImports(meta: Metafile): string[] {
  return Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external && !BUILTINS.has(i.path)).map((i) => i.path));
}

type Version = [number, number, number];

function version(s: string): Version {
  const [a = 0, b = 0, c = 0] = s.split('.').map(Number);
  return [a, b, c];
}

function atLeast(v: Version, min: Version): boolean {
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
  return true;
}

/** engines.node is the one statement of the oldest node relonix runs on: `>=MAJOR[.MINOR[.PATCH]]`. */
function oldestNode(engines: string): Version {
  const m = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(engines.trim());
  if (!m) throw new Error(`package.json engines.node must read ">=MAJOR[.MINOR[.PATCH]]", not ${JSON.stringify(engines)}`);
  return version(m[1]!);
}

/** True when every node from `oldest` on satisfies `range` ("^18.19.0 || >=20.5.0", ">= 8", "*"). */
function coversFrom(range: string, oldest: Version): boolean {
  return range.split('||').some((alt) => {
    const a = alt.trim();
    if (a === '' || a === '*' || a === 'x') return true;
    const m = /^>=\s*v?(\d+(?:\.\d+){0,2})$/.exec(a);
    // anything else (^, ~, <, a hyphen range) closes at some version, so it never covers every later node
    return m !== null && atLeast(oldest, version(m[1]!));
  });
}

/** The package folder each bundled file came from (the innermost node_modules/NAME or node_modules/@SCOPE/NAME). */
function packageDirs(inputs: string[]): string[] {
  const dirs = inputs.map((f) => /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((d): d is string => d !== undefined);
  return [...new Set(dirs)].sort();
}

interface Manifest {
  name: string;
  version: string;
  license?: string;
  engines?: { node?: string };
}

function manifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(root, dir, 'package.json'), 'utf8')) as Manifest;
}

/** Refuses a bundle whose dependencies ask for a newer node than engines.node promises. */
function checkEngines(oldest: Version, dirs: string[]): void {
  const wrong = dirs.map(manifest).filter((m) => m.engines?.node && !coversFrom(m.engines.node, oldest));
  if (wrong.length) {
    const list = wrong.map((m) => `${m.name}@${m.version} wants node ${m.engines!.node}`).join('; ');
    throw new Error(`package.json engines.node says >=${oldest.join('.')}, but ${list}: raise engines.node or pin older majors`);
  }
}

/**
 * The bundle is a copy of every package inside it, and their licenses (MIT, ISC, BlueOak, ...) ask
 * that a copy carries their notice: appended as one comment, each distinct text once.
 */
function licenseNotice(dirs: string[]): string {
  if (dirs.length === 0) return '';
  const byText = new Map<string, string[]>();
  for (const dir of dirs) {
    const m = manifest(dir);
    const file = readdirSync(path.join(root, dir)).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = file ? readFileSync(path.join(root, dir, file), 'utf8').trim() : `${m.license ?? 'no license stated'} (no license file in the package)`;
    byText.set(text, [...(byText.get(text) ?? []), `${m.name}@${m.version}`]);
  }
  const parts = [...byText].map(([text, names]) => `${names.join(', ')}:\n\n${text}`);
  const body = `relonix bundles these packages; their licenses follow.\n\n${parts.join('\n\n---\n\n')}`;
  return `\n/*! ${body.replaceAll('*/', '* /')}\n*/\n`;
}

/** The split build's pointer to the notice: dist/relonix.mjs is built from the same packages, and ships with it. */
const SPLIT_NOTICE = '\n/*! The licenses of the packages bundled here are at the end of ../relonix.mjs, built from the same packages. */\n';

/** Of package.json the bundles need the version alone: the rest (scripts, dev dependencies) stays out. */
const versionOnly: Plugin = {
  name: 'package-version-only',
  setup(b) {
    const file = path.join(root, 'package.json');
    b.onLoad({ filter: /[/\\]package\.json$/ }, (a) => (a.path === file ? { contents: JSON.stringify({ version: pkg.version }), loader: 'json' } : undefined));
  },
};

/**
 * node's own modules, loaded when the code that imports them first runs rather than all at start-up.
 * An ESM bundle would hoist every `import ... from 'node:http'` of every module to its top, so even
 * `relonix --version` would load http2, tls and zlib; required through CommonJS instead, each waits
 * for the first module that needs it (esbuild initialises modules reached by import() lazily).
 */
const BUILTIN = 'builtin';
const lazyBuiltins: Plugin = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /./ }, (a) => (a.kind === 'import-statement' && BUILTINS.has(a.path) ? { path: a.path, namespace: BUILTIN } : undefined));
    b.onLoad({ filter: /./, namespace: BUILTIN }, (a) => ({ contents: `module.exports = require(${JSON.stringify(a.path)});`, loader: 'js' }));
  },
};

/** The generated entry, as a module of its own: a split build takes entry points, not stdin. */
function entryModule(b: Bundle): Plugin {
  return {
    name: 'entry',
    setup(pb) {
      pb.onResolve({ filter: /^<entry>$/ }, () => ({ path: ENTRY, namespace: 'entry' }));
      pb.onLoad({ filter: /./, namespace: 'entry' }, () => ({ contents: entry(b), resolveDir: root, loader: 'ts' }));
    },
  };
}

/** Replaces `dest` (a file, or a split build's folder) with `tmp`; a reader meanwhile finds the old or none. */
function replace(tmp: string, dest: string): void {
  const old = `${dest}.old`;
  rmSync(old, { recursive: true, force: true });
  if (existsSync(dest)) renameSync(dest, old);
  renameSync(tmp, dest);
  rmSync(old, { recursive: true, force: true });
}

async function build(esbuild: typeof import('esbuild'), b: Bundle, oldest: Version): Promise<void> {
  const outfile = path.join(root, 'dist', b.name);
  // a split build is its folder (dist/cli/), built beside it and swapped in whole
  const dest = b.split ? path.dirname(outfile) : outfile;
  const tmp = `${dest}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  const out = b.split ? path.join(tmp, path.basename(outfile)) : tmp;
  const r = await esbuild.build({
    entryPoints: { [path.basename(outfile, '.mjs')]: ENTRY },
    ...(b.split ? { outdir: tmp, splitting: true, chunkNames: 'chunks/[name]-[hash]', outExtension: { '.js': '.mjs' } } : { outfile: tmp }),
    bundle: true,
    platform: 'node',
    format: 'esm',
    // the syntax node can parse from the oldest version engines.node admits
    target: `node${oldest.join('.')}`,
    banner: { js: BANNER },
    plugins: [entryModule(b), versionOnly, lazyBuiltins],
    // less to parse at every start, and to install; names stay, for stack traces
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'utf8',
    metafile: true,
    logLevel: 'warning',
  });
  const foreign = foreignImports(r.metafile);
  if (foreign.length) throw new Error(`dist/${b.name} would import ${foreign.join(', ')} at run time: bundle it or drop it`);
  const inputs = Object.keys(r.metafile.inputs);
  const dirs = packageDirs(inputs);
  checkEngines(oldest, dirs);
  // the split build ships beside the single file, whose notice covers the same packages: once per
  // package (it counts against the installed size), and not parsed at every start
  writeFileSync(out, b.split ? SPLIT_NOTICE : licenseNotice(dirs), { flag: 'a' });
  chmodSync(out, 0o755);
  const sources = inputs.filter((f) => !f.includes('node_modules/') && !f.startsWith('entry:') && !f.startsWith(`${BUILTIN}:`));
  // sources first, bundle last: a bundle is only ever next to the list it was made from
  const list = b.split ? `${out}.sources.json` : `${outfile}.sources.json`;
  writeFileSync(list, `${JSON.stringify(sources)}\n`);
  replace(tmp, dest);
}

let esbuild: typeof import('esbuild');
try {
  esbuild = await import('esbuild');
} catch {
  console.error('relonix: esbuild is missing (a dev dependency): run npm ci, then npm run build');
  process.exit(1);
}
mkdirSync(path.join(root, 'dist'), { recursive: true });
const oldest = oldestNode(pkg.engines?.node ?? '');
for (const b of BUNDLES) await build(esbuild, b, oldest);
