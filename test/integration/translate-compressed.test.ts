// Store references inside gzip, xz and zip data cannot be rewritten in place: the rewriter names the
// file, the member and the hash parts, says when it changed a compressed file's bytes (its checksums
// are then wrong), and says when it could not look inside.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { rewriteNar } from '../../src/translate/rewrite.ts';
import { collect, hashOf, type Mapping, nar, rewritten, type Tree } from '../helpers/nar-model.ts';
import { requireTool } from '../helpers/tools.ts';

const [H1, H2] = [hashOf('a'), hashOf('b')];
const M: Mapping = { from: '/nix/store', to: '/tmp/store', hashes: new Map([[H1, hashOf('c')]]) };
const rules = { fromStoreDir: M.from, toStoreDir: M.to, hashes: M.hashes };
const ref = (h: string, name: string) => `/nix/store/${h}-${name}`;
const file = (contents: Buffer): Tree => ({ type: 'regular', contents });

/** A zip archive as the format describes it: local headers, data, central directory, end record. */
function zip(members: { name: string; data: Buffer; method: 0 | 8 }[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const body = m.method === 8 ? zlib.deflateRawSync(m.data) : m.data;
    const name = Buffer.from(m.name);
    const fields = (b: Buffer, at: number) => {
      b.writeUInt16LE(m.method, at);
      b.writeUInt32LE(zlib.crc32(m.data), at + 6);
      b.writeUInt32LE(body.length, at + 10);
      b.writeUInt32LE(m.data.length, at + 14);
      b.writeUInt16LE(name.length, at + 18);
    };
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    fields(local, 8);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    fields(entry, 10);
    entry.writeUInt32LE(offset, 42);
    parts.push(local, name, body);
    central.push(entry, name);
    offset += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(members.length, 8);
  end.writeUInt16LE(members.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

test('references inside gzip, xz and zip members are named by file, member and hash part', async () => {
  requireTool('xz', 'xz-utils');
  const text = `#!/bin/sh\nexec ${ref(H1, 'bash')}/bin/bash ${ref(H2, 'lib')}/lib ${ref(H1, 'bash')}\n`;
  const xz = execFileSync('xz', ['-c', '-T1'], { input: text });
  const jar = zip([
    { name: 'META-INF/MANIFEST.MF', data: Buffer.from('Manifest-Version: 1.0\n'), method: 8 },
    { name: 'deflated.properties', data: Buffer.from(`home=${ref(H2, 'jdk')}\n`.repeat(50)), method: 8 },
    { name: 'stored.txt', data: Buffer.from(`path=${ref(H1, 'bash')}`), method: 0 },
  ]);
  const tree: Tree = {
    type: 'directory',
    entries: {
      'man.1.gz': file(zlib.gzipSync(text)),
      'plain.gz': file(zlib.gzipSync('nothing to see')),
      'data.xz': file(xz),
      'app.jar': file(jar),
      // zips are known by their first bytes: one behind a stub (self-extracting) is not looked into
      'sfx.bin': file(Buffer.concat([Buffer.from('#!/bin/sh\nexit 0\n'), zip([{ name: 'inner', data: Buffer.from(ref(H2, 'x')), method: 8 }])])),
      'broken.gz': file(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5])),
    },
  };
  const r = rewriteNar([nar(tree)], rules);
  const out = await collect(r.chunks);
  assert.ok(out.equals(nar(rewritten(tree, M))), 'compressed files are passed on, rewritten only where their raw bytes match');
  const byFile = new Map(r.summary.compressed.map((c) => [c.file, c]));
  assert.deepEqual([...byFile.keys()].sort(), ['app.jar', 'broken.gz', 'data.xz', 'man.1.gz']);
  const found = (f: string) => byFile.get(f)!.found;
  assert.deepEqual(found('man.1.gz'), [{ hashes: [H1, H2], occurrences: 3 }]);
  assert.deepEqual(found('data.xz'), [{ hashes: [H1, H2], occurrences: 3 }]);
  assert.equal(byFile.get('data.xz')!.format, 'xz');
  assert.deepEqual(found('app.jar'), [
    { member: 'deflated.properties', hashes: [H2], occurrences: 50 },
    { member: 'stored.txt', hashes: [H1], occurrences: 1 },
  ]);
  assert.equal(byFile.get('app.jar')!.rewrittenInPlace, 2, 'the stored member was rewritten: its CRC-32 is now wrong');
  assert.equal(byFile.get('man.1.gz')!.rewrittenInPlace, 0);
  assert.match(byFile.get('broken.gz')!.error!, /./);
  assert.deepEqual(found('broken.gz'), []);
});
