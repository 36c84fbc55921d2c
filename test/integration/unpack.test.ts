// Unpacking: hostile archives are refused before anything lands outside the destination, and the
// real fixture unpacks to the same tree through host xz and through the WebAssembly fallback.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readTarballInfo } from '../../src/bootstrap/tarball.ts';
import { unpackTarball } from '../../src/bootstrap/untar.ts';
import { hostXz } from '../../src/codec/host-tools.ts';
import { ensureFixture } from '../../src/demo/mirror.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { removeTree } from '../../src/util/fs.ts';
import { END, entry } from '../helpers/tar.ts';
import { requireTool } from '../helpers/tools.ts';
import { waitUntil } from '../helpers/wait.ts';

interface Entry {
  name: string;
  /** tar typeflag: 0 file, 1 hardlink, 2 symlink, 3 char device, 5 directory, 6 FIFO */
  type?: '0' | '1' | '2' | '3' | '5' | '6';
  mode?: number;
  body?: string | Buffer;
  link?: string;
}

function octal(h: Buffer, off: number, len: number, n: number): void {
  h.write(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
}

/** A raw ustar archive, byte by byte, so names no archiver would write can be tested. */
function tarOf(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    const type = e.type ?? '0';
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'latin1');
    octal(h, 100, 8, e.mode ?? (type === '5' ? 0o755 : 0o644));
    octal(h, 108, 8, 0);
    octal(h, 116, 8, 0);
    octal(h, 124, 12, type === '0' ? body.length : 0);
    octal(h, 136, 12, 1);
    h.write(type, 156, 1, 'latin1');
    if (e.link) h.write(e.link, 157, 100, 'latin1');
    h.write('ustar\0', 257, 6, 'latin1');
    h.write('00', 263, 2, 'latin1');
    if (type === '3') {
      octal(h, 329, 8, 1);
      octal(h, 337, 8, 3);
    }
    h.fill(' ', 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    blocks.push(h);
    if (type === '0' && body.length) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

let tmp: string;
let n = 0;
async function tarball(entries: Entry[]): Promise<{ file: string; dir: string; dest: string }> {
  const dir = path.join(tmp, `case${++n}`);
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'hostile.tar.xz');
  await fs.writeFile(file, execFileSync('xz', ['-c', '-0'], { input: tarOf(entries), maxBuffer: 1 << 30 }));
  return { file, dir, dest: path.join(dir, 'staging') };
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Unpack must fail with a message naming the entry, and leave neither dest nor dest.partial. */
async function refused(c: { file: string; dest: string }, entry: string, why: RegExp, noHostXz = false): Promise<void> {
  await assert.rejects(unpackTarball({ tarball: c.file, dest: c.dest, noHostXz }), (e: unknown) => {
    assert.ok(e instanceof RelonixError, String(e));
    assert.equal(e.kind, 'integrity');
    assert.ok(e.message.includes(`"${entry}"`), e.message);
    assert.match(e.message, why);
    assert.ok(e.hint);
    return true;
  });
  assert.equal(await exists(c.dest), false, 'no destination');
  assert.equal(await exists(`${c.dest}.partial`), false, '.partial cleaned up');
  // the refusal stopped reading: the host's xz it was draining ends, rather than waiting on its pipes
  const left = () => spawnSync('pgrep', ['-P', String(process.pid), '-x', 'xz'], { encoding: 'utf8' }).stdout.trim();
  await waitUntil('no xz is left running', () => left() === '', { ms: 5000, every: 100 });
}

const top = 'nix-2.8.0-x86_64-linux';

before(async () => {
  assert.ok(hostXz(), 'xz must be installed for these tests (apt-get install xz-utils)');
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'relonix-unpack-'));
});
after(async () => {
  await removeTree(tmp);
});

test('unpack: "../evil" is refused and nothing is written beside the destination', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: '../evil', body: 'pwned' },
  ]);
  await refused(c, '../evil', /\.\./);
  assert.equal(await exists(path.join(c.dir, 'evil')), false);
});

test('unpack: a refusal at the start of a big tarball stops the host xz that was still decoding it', async () => {
  // 32 MiB that xz cannot shrink: far more than the pipes hold, so xz is still running at the refusal
  const c = await tarball([
    { name: '../evil', body: 'pwned' },
    { name: `${top}/big`, body: randomBytes(32 << 20) },
  ]);
  await refused(c, '../evil', /\.\./);
});

test('unpack: an absolute name is refused', async () => {
  const outside = path.join(tmp, `abs-${randomBytes(4).toString('hex')}`);
  const c = await tarball([{ name: outside, body: 'pwned' }]);
  await refused(c, outside, /absolute/);
  assert.equal(await exists(outside), false);
});

test('unpack: a symlink out of the tree followed by a file below it is refused (no write-through)', async () => {
  const outside = path.join(tmp, `outside-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(outside);
  // the link itself is refused at once; the lexical escape is what catches it
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/a`, type: '2', link: outside },
    { name: `${top}/a/file`, body: 'pwned' },
  ]);
  await refused(c, `${top}/a`, /symlink/);
  assert.deepEqual(await fs.readdir(outside), []);
  // a link that is allowed (into /nix/store) still must not be written through
  const d = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/b`, type: '2', link: '/nix/store/00000000000000000000000000000000-x' },
    { name: `${top}/b/file`, body: 'pwned' },
  ]);
  await refused(d, `${top}/b/file`, /write through/);
  // and the same through a relative link that stays inside
  const e = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/d/`, type: '5' },
    { name: `${top}/l`, type: '2', link: 'd' },
    { name: `${top}/l/file`, body: 'pwned' },
  ]);
  await refused(e, `${top}/l/file`, /write through/);
});

test('unpack: a symlink to ../../.. is refused; links inside the tree and into /nix/store are kept', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/up`, type: '2', link: '../../..' },
  ]);
  await refused(c, `${top}/up`, /outside/);
  const sneaky = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/s`, type: '2', link: '/nix/store/../../etc/passwd' },
  ]);
  await refused(sneaky, `${top}/s`, /outside/);
  const ok = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/bin/`, type: '5' },
    { name: `${top}/bin/nix`, body: 'x', mode: 0o555 },
    { name: `${top}/bin/nix-env`, type: '2', link: 'nix' },
    { name: `${top}/store-link`, type: '2', link: '/nix/store/00000000000000000000000000000000-x/bin' },
    { name: `${top}/up-and-in`, type: '2', link: '../nix-2.8.0-x86_64-linux/bin' },
  ]);
  const r = await unpackTarball({ tarball: ok.file, dest: ok.dest });
  assert.equal(await fs.readlink(path.join(r.root, 'bin/nix-env')), 'nix');
  assert.equal(await fs.readlink(path.join(r.root, 'store-link')), '/nix/store/00000000000000000000000000000000-x/bin');
});

test('unpack: symlink chains that only escape when followed are refused, and so are loops', async () => {
  // b looks like it stays in the tree, but a is a store link: b is /nix/store/<x>/../../etc
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/a`, type: '2', link: '/nix/store/00000000000000000000000000000000-x' },
    { name: `${top}/b`, type: '2', link: 'a/../../etc' },
  ]);
  await refused(c, `${top}/b`, /above \/nix\/store/);
  // x names top/ lexically, but d/up is top itself, so x climbs two levels out
  const d = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/d/`, type: '5' },
    { name: `${top}/d/up`, type: '2', link: '..' },
    { name: `${top}/x`, type: '2', link: 'd/up/../..' },
  ]);
  await refused(d, `${top}/x`, /outside/);
  const loop = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/l1`, type: '2', link: 'l2/x' },
    { name: `${top}/l2`, type: '2', link: 'l1/x' },
  ]);
  await refused(loop, `${top}/l1`, /loop/);
});

test('unpack: a hardlink to /etc/passwd (or out of the tree) is refused; one inside is kept', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/passwd`, type: '1', link: '/etc/passwd' },
  ]);
  await refused(c, `${top}/passwd`, /absolute/);
  const d = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/passwd`, type: '1', link: '../../../../../../../etc/passwd' },
  ]);
  await refused(d, `${top}/passwd`, /\.\./);
  const ok = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/a`, body: 'same inode' },
    { name: `${top}/b`, type: '1', link: `${top}/a` },
  ]);
  const r = await unpackTarball({ tarball: ok.file, dest: ok.dest });
  const [a, b] = await Promise.all([fs.stat(path.join(r.root, 'a')), fs.stat(path.join(r.root, 'b'))]);
  assert.equal(a.ino, b.ino);
});

test('unpack: device nodes and FIFOs are refused', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/null`, type: '3' },
  ]);
  await refused(c, `${top}/null`, /device/);
  const d = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/pipe`, type: '6' },
  ]);
  await refused(d, `${top}/pipe`, /FIFO/, true);
});

test('unpack: a sparse file or a type no tar defines is refused by name; a tar damaged inside good xz is a damaged tarball', async () => {
  const xzOf = async (name: string, tar: Buffer) => {
    const file = path.join(tmp, name);
    await fs.writeFile(file, execFileSync('xz', ['-c', '-0'], { input: tar }));
    return { file, dest: path.join(tmp, `${name}-staging`) };
  };
  const dir = entry({ name: `${top}/`, type: '5', mode: 0o755 });
  await refused(
    await xzOf('sparse.tar.xz', Buffer.concat([dir, entry({ name: `${top}/sparse`, type: 'S', body: 'x' }), END])),
    `${top}/sparse`,
    /unsupported type SparseFile/,
  );
  await refused(await xzOf('odd.tar.xz', Buffer.concat([dir, entry({ name: `${top}/odd`, type: 'Z' }), END])), `${top}/odd`, /unsupported type "Z"/);
  const cut = Buffer.concat([dir, entry({ name: `${top}/f`, body: 'y'.repeat(3000) })]).subarray(0, 2000);
  const c = await xzOf('cut.tar.xz', cut);
  await assert.rejects(unpackTarball({ tarball: c.file, dest: c.dest }), (e: unknown) => {
    assert.ok(e instanceof RelonixError && e.kind === 'integrity', String(e));
    assert.match(e.message, new RegExp(`could not unpack .*: the archive ends inside "${top}/f", 2024 bytes of its content short`));
    return true;
  });
  assert.equal(await exists(`${c.dest}.partial`), false);
});

test('unpack: setuid, setgid and sticky bits are dropped; read-only dirs become owner-writable', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5', mode: 0o555 },
    { name: `${top}/store/`, type: '5', mode: 0o1777 },
    { name: `${top}/store/suid`, body: '#!/bin/sh\n', mode: 0o4755 },
    { name: `${top}/store/sgid`, body: 'x', mode: 0o2555 },
    { name: `${top}/store/ro`, body: 'x', mode: 0o444 },
  ]);
  const r = await unpackTarball({ tarball: c.file, dest: c.dest });
  const mode = async (p: string) => (await fs.lstat(path.join(r.root, p))).mode & 0o7777;
  assert.equal(await mode('store/suid'), 0o755);
  assert.equal(await mode('store/sgid'), 0o555);
  assert.equal(await mode('store/ro'), 0o444);
  assert.equal(await mode('store'), 0o777);
  assert.equal(await mode('.'), 0o755);
});

test('unpack: a damaged tarball is a clear integrity error and leaves no .partial', async () => {
  const fx = await ensureFixture();
  const whole = await fs.readFile(fx.tarball);
  const file = path.join(tmp, 'truncated.tar.xz');
  await fs.writeFile(file, whole.subarray(0, Math.floor(whole.length / 3)));
  for (const noHostXz of [false, true]) {
    const dest = path.join(tmp, `truncated-${noHostXz}`);
    await assert.rejects(unpackTarball({ tarball: file, dest, noHostXz }), (e: unknown) => {
      assert.ok(e instanceof RelonixError && e.kind === 'integrity', String(e));
      assert.match(e.message, /could not unpack/);
      // xz's own words, from the program and from the WebAssembly decoder alike
      assert.match(e.message, /unexpected end of input/i);
      return true;
    });
    assert.equal(await exists(dest), false);
    assert.equal(await exists(`${dest}.partial`), false);
  }
});

async function treeDigest(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string) => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const rel = path.relative(root, p);
      const st = await fs.lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(rel, `link ${await fs.readlink(p)}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir ${mode}`);
        await walk(p);
      } else
        out.set(
          rel,
          `file ${mode} ${createHash('sha256')
            .update(await fs.readFile(p))
            .digest('hex')}`,
        );
    }
  };
  await walk(root);
  return out;
}

test("unpack: busybox's xz first on PATH is passed over (it refuses -T): the real xz after it, else the WebAssembly decoder", async () => {
  const fx = await ensureFixture();
  const bin = path.join(tmp, 'busybox-bin');
  await fs.mkdir(bin);
  await fs.symlink(requireTool('busybox', 'busybox-static'), path.join(bin, 'xz'));
  const saved = process.env.PATH;
  const unpack = async (pathVar: string, dest: string) => {
    process.env.PATH = pathVar;
    try {
      return await unpackTarball({ tarball: fx.tarball, dest: path.join(tmp, dest) });
    } finally {
      process.env.PATH = saved;
    }
  };
  const real = await unpack(`${bin}:${saved}`, 'fx-busybox-first');
  assert.equal(real.via, 'xz');
  assert.equal(real.sha256, fx.sha256);
  const alone = await unpack(bin, 'fx-busybox-alone');
  assert.equal(alone.via, 'wasm');
  assert.equal(alone.sha256, fx.sha256);
});

test('unpack: an xz first on PATH that fails at once (a library it cannot load) gives way to the WebAssembly decoder, which unpacks the same tarball', async () => {
  const fx = await ensureFixture();
  const bin = path.join(tmp, 'failing-xz-bin');
  await fs.mkdir(bin);
  await fs.writeFile(path.join(bin, 'xz'), "#!/bin/sh\necho 'xz: error while loading shared libraries: liblzma.so.5' >&2\nexit 127\n", { mode: 0o755 });
  const saved = process.env.PATH;
  process.env.PATH = `${bin}:${saved}`;
  let r;
  try {
    r = await unpackTarball({ tarball: fx.tarball, dest: path.join(tmp, 'fx-failing-xz') });
  } finally {
    process.env.PATH = saved;
  }
  assert.equal(r.via, 'wasm', 'decoded without the failing xz');
  assert.equal(r.sha256, fx.sha256);
  const host = await unpackTarball({ tarball: fx.tarball, dest: path.join(tmp, 'fx-failing-xz-ref') });
  assert.equal(host.via, 'xz', "the host's own xz is still taken");
  const [got, want] = await Promise.all([treeDigest(r.root), treeDigest(host.root)]);
  assert.ok(got.size > 100, `${got.size} entries`);
  assert.deepEqual(got, want);
});

test('unpack: the fixture unpacks to identical trees through host xz and the WebAssembly fallback', async () => {
  const fx = await ensureFixture();
  const a = path.join(tmp, 'fx-host');
  const b = path.join(tmp, 'fx-wasm');
  const progress: number[] = [];
  const t0 = performance.now();
  const ra = await unpackTarball({ tarball: fx.tarball, dest: a, onProgress: (p) => progress.push(p.received) });
  const t1 = performance.now();
  const saved = process.env.RELONIX_NO_HOST_XZ;
  process.env.RELONIX_NO_HOST_XZ = '1';
  let rb;
  try {
    rb = await unpackTarball({ tarball: fx.tarball, dest: b });
  } finally {
    if (saved === undefined) delete process.env.RELONIX_NO_HOST_XZ;
    else process.env.RELONIX_NO_HOST_XZ = saved;
  }
  const t2 = performance.now();
  console.log(`unpack of the fixture: host xz ${((t1 - t0) / 1000).toFixed(2)} s, WebAssembly xz ${((t2 - t1) / 1000).toFixed(2)} s`);
  assert.equal(ra.via, 'xz');
  assert.equal(rb.via, 'wasm');
  // the sha256 of what each read, taken beside the decoding: the tarball's own
  assert.equal(ra.sha256, fx.sha256);
  assert.equal(rb.sha256, fx.sha256);
  assert.equal(path.basename(ra.root), top);
  assert.equal(progress.at(-1), (await fs.stat(fx.tarball)).size);
  const [da, db] = await Promise.all([treeDigest(ra.root), treeDigest(rb.root)]);
  assert.ok(da.size > 100, `${da.size} entries`);
  assert.deepEqual(db, da);
  // store directories arrive owner-writable, files keep their read-only modes
  assert.equal(da.get(`store/${path.basename(fx.nixPath)}`), 'dir 755');
  assert.match(da.get(`store/${path.basename(fx.nixPath)}/bin/nix`) ?? '', /^file 555 /);
  // the host tar agrees on every file
  const ref = path.join(tmp, 'fx-tar');
  await fs.mkdir(ref);
  execFileSync('tar', ['-xJf', fx.tarball, '-C', ref]);
  const dr = await treeDigest(path.join(ref, top));
  for (const [k, v] of dr) {
    if (v.startsWith('file')) assert.equal(da.get(k)?.split(' ')[2], v.split(' ')[2], k);
    else if (v.startsWith('link')) assert.equal(da.get(k), v, k);
  }
  assert.equal(dr.size, da.size);

  const info = await readTarballInfo(ra.root);
  assert.equal(info.version, '2.8.0');
  assert.equal(info.system, 'x86_64-linux');
  assert.equal(info.nixPath, fx.nixPath);
  assert.equal(info.cacertPath, fx.cacertPath);
  assert.deepEqual(info.reginfo.map((r) => r.path).sort(), [...fx.storePaths].sort());
});

test('unpack: an existing destination is reused; a .partial left by a kill is redone', async () => {
  const c = await tarball([
    { name: `${top}/`, type: '5' },
    { name: `${top}/f`, body: 'fresh' },
  ]);
  await fs.mkdir(`${c.dest}.partial/${top}`, { recursive: true });
  await fs.writeFile(`${c.dest}.partial/${top}/stale`, 'from a killed run');
  await fs.chmod(`${c.dest}.partial/${top}`, 0o555);
  const r = await unpackTarball({ tarball: c.file, dest: c.dest });
  assert.deepEqual(await fs.readdir(r.root), ['f']);
  assert.equal(await exists(`${c.dest}.partial`), false);
  const again = await unpackTarball({ tarball: c.file, dest: c.dest });
  assert.equal(again.via, 'existing');
  assert.equal(again.root, r.root);
});
