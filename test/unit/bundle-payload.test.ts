// The payload of a bundle, read back with the unpack's tar reader: a closure in a temporary store dir becomes a tar
// of the run dir's contents, references rewritten in files and symlinks, hard links kept, long names
// in pax headers, and last the list of where the run dir is named. Temporary files only.
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';
import { launcherSize, PATCHES, renderLauncher } from '../../src/bundle/launcher.ts';
import { tarClosure } from '../../src/bundle/payload.ts';
import { tarHeader } from '../../src/bundle/tar.ts';
import { removeTree } from '../../src/util/fs.ts';
import { readTar as readEntries } from '../helpers/tar.ts';

interface Read {
  type: string;
  mode: number;
  linkpath?: string;
  body: Buffer;
}

async function readTar(chunks: Buffer[]): Promise<Map<string, Read>> {
  return new Map(readEntries(chunks).map((e) => [e.path, { type: e.type, mode: e.mode ?? 0, linkpath: e.linkpath, body: e.body }]));
}

let top: string;
let storeDir: string;
/** a run dir as long as the store dir: a name only, nothing is written there */
let runDir: string;
const H1 = '0c6l5hhy7lrhlfzxjx6bf0xqmnhz8gzi-app';
const H2 = '1b9p07z77phvv2hf6gm9f28syp39f1ag-lib';
const DEEP = `${'deep-directory-name/'.repeat(8)}file-with-a-name-long-enough-that-no-ustar-split-can-hold-it-${'z'.repeat(60)}`;

before(async () => {
  top = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-bundle-unit-'));
  storeDir = path.join(top, 's');
  runDir = `/run/${'r'.repeat(storeDir.length - 5)}`;
  const app = path.join(storeDir, H1);
  const lib = path.join(storeDir, H2);
  await fs.mkdir(path.join(app, 'bin'), { recursive: true });
  await fs.mkdir(path.join(lib, 'lib'), { recursive: true });
  await fs.writeFile(path.join(app, 'bin', 'run'), `#!${lib}/bin/sh\nexec ${app}/bin/app "$@"\n`, { mode: 0o755 });
  await fs.writeFile(path.join(lib, 'lib', 'data'), Buffer.concat([Buffer.from([0x7f, 0]), Buffer.from(`${lib}/lib\0/tmp/nix/share\0`)]));
  await fs.link(path.join(lib, 'lib', 'data'), path.join(lib, 'lib', 'data-again'));
  await fs.symlink(`${app}/bin/run`, path.join(app, 'bin', 'abs-link'));
  await fs.symlink('run', path.join(app, 'bin', 'rel-link'));
  await fs.mkdir(path.join(lib, path.dirname(DEEP)), { recursive: true });
  await fs.writeFile(path.join(lib, DEEP), 'x');
  await fs.writeFile(path.join(lib, 'lib', 'where.gz'), zlib.gzipSync(`${lib}/lib\n${lib}/lib\n`));
});

after(async () => {
  if (top) await removeTree(top);
});

test('the payload holds the closure as the run dir will: references rewritten, links kept, the patch list last', async () => {
  const { chunks, stats } = tarClosure({ storeDir, runDir, paths: [path.join(storeDir, H2), path.join(storeDir, H1)] });
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(c);
  const tar = Buffer.concat(parts);
  assert.equal(tar.length % 512, 0);
  const entries = await readTar([tar]);
  const names = [...entries.keys()];
  assert.equal(names[0], `${H1}/`, 'store paths in name order');
  assert.equal(names.at(-1), PATCHES, 'the patch list is last');

  const run = entries.get(`${H1}/bin/run`)!;
  assert.equal(run.mode, 0o555);
  const script = `#!${runDir}/${H2}/bin/sh\nexec ${runDir}/${H1}/bin/app "$@"\n`;
  assert.equal(run.body.toString(), script);
  assert.equal(entries.get(`${H1}/bin/abs-link`)!.linkpath, `${runDir}/${H1}/bin/run`);
  assert.equal(entries.get(`${H1}/bin/rel-link`)!.linkpath, 'run');
  const data = entries.get(`${H2}/lib/data`)!;
  assert.equal(data.mode, 0o444);
  assert.deepEqual(data.body, Buffer.concat([Buffer.from([0x7f, 0]), Buffer.from(`${runDir}/${H2}/lib\0/tmp/nix/share\0`)]));
  const again = entries.get(`${H2}/lib/data-again`)!;
  assert.equal(again.type, 'Link');
  assert.equal(again.linkpath, `${H2}/lib/data`, 'the second name of a file is a hard link to the first');
  assert.equal(entries.get(`${H2}/${DEEP}`)!.body.toString(), 'x', 'a name longer than ustar holds, through a pax header');
  assert.equal(entries.get(`${H1}/bin/`)!.type, 'Directory');

  assert.deepEqual(stats.compressed, [{ file: `${H2}/lib/where.gz`, format: 'gzip', occurrences: 2 }]);
  assert.equal(stats.files, 5);
  assert.equal(stats.symlinks, 2);
  assert.equal(stats.references, 4);
  const patches = entries.get(PATCHES)!.body.toString();
  const second = script.indexOf(runDir, 3);
  assert.equal(patches, [`l ${H1}/bin/abs-link`, `/${H1}/bin/run`, `b ${H1}/bin/run`, `2 ${second}`, `b ${H2}/lib/data`, '2', ''].join('\n'));
  // each offset names the run dir in the file as the payload holds it
  for (const [file, offsets] of [
    [`${H1}/bin/run`, [2, second]],
    [`${H2}/lib/data`, [2]],
  ] as const) {
    for (const o of offsets) assert.equal(entries.get(file)!.body.toString('latin1', o, o + runDir.length), runDir, `${file} at ${o}`);
  }
  assert.equal(stats.fixed, undefined);
});

test('the same closure gives the same payload, byte for byte', async () => {
  const read = async () => {
    const parts: Buffer[] = [];
    for await (const c of tarClosure({ storeDir, runDir, paths: [path.join(storeDir, H1), path.join(storeDir, H2)] }).chunks) parts.push(c);
    return Buffer.concat(parts);
  };
  assert.deepEqual(await read(), await read());
});

test('file names and link targets that are not UTF-8 go into the payload byte for byte, in byte order', async () => {
  const H3 = '2d7q8r9s0a1b2c3d4f5g6h7i8j9k0l1m-names';
  const share = Buffer.from(path.join(storeDir, H3, 'share'));
  await fs.mkdir(share, { recursive: true });
  const latin1 = Buffer.from('caf\xe9.txt', 'latin1');
  const name = (n: Buffer) => Buffer.concat([share, Buffer.from('/'), n]);
  await fs.writeFile(name(latin1), 'latin1\n');
  await fs.writeFile(name(Buffer.from('café.txt')), 'utf-8\n');
  await fs.symlink(Buffer.concat([share, Buffer.from('/'), latin1]), name(Buffer.from('link')));
  const parts: Buffer[] = [];
  for await (const c of tarClosure({ storeDir, runDir, paths: [path.join(storeDir, H3)] }).chunks) parts.push(c);
  const tar = Buffer.concat(parts);
  const inTar = (b: Buffer) => tar.indexOf(b);
  const latin1Entry = Buffer.concat([Buffer.from(`${H3}/share/`), latin1, Buffer.from([0])]);
  assert.ok(inTar(latin1Entry) >= 0, 'the name is its bytes, not a replacement character');
  assert.equal(tar.subarray(inTar(latin1Entry) + 512, inTar(latin1Entry) + 512 + 7).toString(), 'latin1\n', 'its content follows its header');
  const utf8 = inTar(Buffer.from(`${H3}/share/café.txt\0`));
  assert.ok(utf8 >= 0 && utf8 < inTar(latin1Entry), 'byte order: é in UTF-8 (0xc3 0xa9) before é in latin1 (0xe9)');
  const target = Buffer.concat([Buffer.from(`${runDir}/${H3}/share/`), latin1, Buffer.from([0])]);
  assert.ok(inTar(target) >= 0, 'the link target, moved to the run dir, keeps its bytes');
  const entries = await readTar([tar]);
  assert.equal(entries.get(`${H3}/share/café.txt`)!.body.toString(), 'utf-8\n');
});

test('ustar names split at a slash; names, link targets and sizes that do not fit go to a pax header', async () => {
  const short = tarHeader({ name: 'a/b', type: 'file', mode: 0o444, size: 3 });
  assert.equal(short.length, 512, 'one block');
  const split = `${'p'.repeat(150)}/${'n'.repeat(99)}`;
  assert.equal(tarHeader({ name: split, type: 'file', mode: 0o444, size: 0 }).length, 512, 'prefix and name hold it');
  const long = tarHeader({ name: 'n'.repeat(300), type: 'symlink', mode: 0o777, linkname: `/${'t'.repeat(200)}` });
  assert.ok(long.length > 512);
  const entries = await readTar([long, Buffer.alloc(1024)]);
  assert.equal(entries.get('n'.repeat(300))!.linkpath, `/${'t'.repeat(200)}`);
  const entriesSplit = await readTar([tarHeader({ name: split, type: 'file', mode: 0o444, size: 0 }), Buffer.alloc(1024)]);
  assert.ok(entriesSplit.has(split));
});

test('the launcher names its values quoted, fits the room it is given, and leaves no placeholder', () => {
  const values = {
    sha256: 'a'.repeat(64),
    name: 'odd $name`',
    runDir: '/tmp/0y7gn',
    entry: `${H1}/bin/it's "odd" $x`,
    storeDir: '/tmp/nix/s',
    closure: '2 store paths, 1.0 MiB',
    system: 'x86_64-linux',
    payload: '',
    paths: [H1, H2],
    version: '0.1.0',
  };
  const skip = launcherSize(values);
  assert.equal(skip % 4096, 0);
  const text = renderLauncher({ ...values, payload: `1.0 MiB, ${'9'.repeat(15)} bytes` }, skip);
  assert.equal(text.length, skip, 'padded to the payload offset');
  const script = text.toString();
  assert.doesNotMatch(script, /@[A-Z]+@/);
  assert.doesNotMatch(script, /\\\$\{/, 'no escaped ${ is left');
  assert.match(script, /^#!\/bin\/sh\n/);
  assert.ok(script.includes(`RB_ENTRY='${H1}/bin/it'\\''s "odd" $x'\n`), 'the entry in single quotes');
  assert.ok(script.includes(`RB_SHA=${'a'.repeat(64)}\n`));
  assert.ok(script.includes(`RB_SKIP=${skip}\n`));
  assert.ok(script.includes('relonix bundle of odd ?name?'), 'the title holds no character the shell reads');
  assert.throws(() => renderLauncher({ ...values, paths: Array(1000).fill(H1) }, skip), /more than the/);
});
