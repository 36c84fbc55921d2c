// The tar reader: every header format GNU tar and others write, read the same in any chunking, its
// content handed on without a copy; and input that is damaged or hostile is an error that says
// where, never a crash, a hang or a guess.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TarFormatError, TarReader } from '../../src/bootstrap/tar-reader.ts';
import { END, entry, gnuLong, header, pax, paxRecord, readTar } from '../helpers/tar.ts';

const pick = (data: Buffer | Buffer[], chunk = 0) =>
  readTar(data, chunk).map((e) => ({ path: e.path, type: e.type, mode: e.mode, size: e.size, linkpath: e.linkpath, body: e.body.toString('latin1') }));

const LONG = `${'long-directory-name/'.repeat(14)}and-a-file-${'n'.repeat(40)}`; // > 255 bytes
const LONG_LINK = `../${'target/'.repeat(30)}end`;

/** An archive of every format and type, each entry with something the next one could trip on. */
function everything(): Buffer {
  return Buffer.concat([
    entry({ name: 'top/', type: '5', mode: 0o755 }),
    entry({ name: 'top/file', body: 'hello\n', mode: 0o4755 }),
    entry({ name: 'top/old', type: '\0', body: 'an old file' }),
    entry({ name: 'top/contiguous', type: '7', body: 'x'.repeat(513) }),
    entry({ name: 'top/empty' }),
    entry({ name: 'top/block', body: 'b'.repeat(512) }),
    entry({ name: 'top/sym', type: '2', link: 'file', mode: 0o777 }),
    entry({ name: 'top/hard', type: '1', link: 'top/file' }),
    entry({ name: 'top/chr', type: '3' }),
    entry({ name: 'top/blk', type: '4' }),
    entry({ name: 'top/fifo', type: '6' }),
    // ustar: name and prefix
    entry({ name: 'in-prefix', prefix: `top/${'p'.repeat(140)}`, body: 'split name' }),
    // GNU: long name and long link target, and no prefix field (GNU keeps times there)
    gnuLong('L', LONG),
    gnuLong('K', LONG_LINK),
    entry({ name: LONG.slice(0, 100), type: '2', link: LONG_LINK.slice(0, 100), format: 'gnu', prefix: '14567123456\0' }),
    gnuLong('L', `${LONG}-file`),
    entry({ name: 'cut', body: 'gnu long file', format: 'gnu' }),
    // pax: path, linkpath and size for the next entry; a global header read and left alone
    pax([['path', 'g-ignored']], 'g'),
    pax([
      ['mtime', '1700000000.5'],
      ['path', `${LONG}-pax`],
      ['comment', 'a value with = and\nnewline'],
      ['size', '1000'],
    ]),
    entry({ name: 'pax-short-name', size: 3, body: 'p'.repeat(1000) }),
    pax([['linkpath', `${LONG_LINK}-pax`]]),
    entry({ name: 'top/pax-link', type: '2', link: 'short' }),
    // v7: no magic, a directory as a file whose name ends in a slash
    entry({ name: 'top/v7dir/', type: '\0', format: 'v7', size: 0 }),
    entry({ name: 'top/v7dir/f', type: '\0', format: 'v7', body: 'v7', prefix: 'ignored/' }),
    // a directory's size is no content
    entry({ name: 'top/sized-dir/', type: '5', size: 4096 }),
    entry({ name: 'top/after', body: 'after' }),
    END,
    Buffer.from('what follows the end is not read'),
  ]);
}

test('tar reader: ustar, GNU, pax and v7 headers, and every entry type', () => {
  const got = pick(everything());
  const by = new Map(got.map((e) => [e.path, e]));
  assert.deepEqual(
    got.map((e) => e.path),
    [
      'top/',
      'top/file',
      'top/old',
      'top/contiguous',
      'top/empty',
      'top/block',
      'top/sym',
      'top/hard',
      'top/chr',
      'top/blk',
      'top/fifo',
      `top/${'p'.repeat(140)}/in-prefix`,
      LONG,
      `${LONG}-file`,
      `${LONG}-pax`,
      'top/pax-link',
      'top/v7dir/',
      'top/v7dir/f',
      'top/sized-dir/',
      'top/after',
    ],
  );
  assert.deepEqual(by.get('top/'), { path: 'top/', type: 'Directory', mode: 0o755, size: 0, linkpath: undefined, body: '' });
  assert.deepEqual(by.get('top/file'), { path: 'top/file', type: 'File', mode: 0o4755, size: 6, linkpath: undefined, body: 'hello\n' });
  assert.equal(by.get('top/old')!.type, 'OldFile');
  assert.equal(by.get('top/old')!.body, 'an old file');
  assert.equal(by.get('top/contiguous')!.type, 'ContiguousFile');
  assert.equal(by.get('top/contiguous')!.body, 'x'.repeat(513));
  assert.equal(by.get('top/empty')!.body, '');
  assert.equal(by.get('top/block')!.body, 'b'.repeat(512));
  assert.deepEqual([by.get('top/sym')!.type, by.get('top/sym')!.linkpath, by.get('top/sym')!.mode], ['SymbolicLink', 'file', 0o777]);
  assert.deepEqual([by.get('top/hard')!.type, by.get('top/hard')!.linkpath], ['Link', 'top/file']);
  assert.deepEqual(
    ['top/chr', 'top/blk', 'top/fifo'].map((p) => by.get(p)!.type),
    ['CharacterDevice', 'BlockDevice', 'FIFO'],
  );
  assert.equal(by.get(`top/${'p'.repeat(140)}/in-prefix`)!.body, 'split name');
  assert.deepEqual([by.get(LONG)!.type, by.get(LONG)!.linkpath], ['SymbolicLink', LONG_LINK]);
  assert.equal(by.get(`${LONG}-file`)!.body, 'gnu long file');
  assert.deepEqual([by.get(`${LONG}-pax`)!.size, by.get(`${LONG}-pax`)!.body], [1000, 'p'.repeat(1000)], 'the pax size overrides the header');
  assert.equal(by.get('top/pax-link')!.linkpath, `${LONG_LINK}-pax`);
  assert.equal(by.get('top/v7dir/')!.type, 'Directory');
  assert.deepEqual([by.get('top/v7dir/f')!.type, by.get('top/v7dir/f')!.body], ['OldFile', 'v7']);
  assert.deepEqual([by.get('top/sized-dir/')!.size, by.get('top/after')!.body], [0, 'after']);
});

test('tar reader: the same entries and content whatever the chunking', () => {
  const data = everything();
  const whole = pick(data);
  for (const chunk of [1, 7, 511, 512, 513, 4096]) assert.deepEqual(pick(data, chunk), whole, `chunks of ${chunk}`);
  // chunks of odd sizes, and content in many pieces
  const cuts = [3, 600, 1500, 1501, 9000];
  const parts = cuts.map((c, i) => data.subarray(i ? cuts[i - 1] : 0, c)).concat([data.subarray(cuts.at(-1))]);
  assert.deepEqual(pick(parts), whole);
});

test('tar reader: content is handed on as views of the chunks it was given, never copied', () => {
  const data = Buffer.concat([entry({ name: 'a', body: 'x'.repeat(3000) }), entry({ name: 'b', body: 'y'.repeat(10) }), END]);
  const pieces: Buffer[] = [];
  const r = new TarReader(() => ({ data: (b) => pieces.push(b), end: () => {} }));
  r.write(data.subarray(0, 1000));
  r.write(data.subarray(1000));
  r.end();
  assert.equal(pieces.length, 3);
  assert.ok(
    pieces.every((p) => p.buffer === data.buffer),
    'every piece lies in the input',
  );
  assert.deepEqual(
    pieces.map((p) => p.byteOffset - data.byteOffset),
    [512, 1000, 3584 + 512],
  );
});

test('tar reader: a body nobody takes is skipped; an entry handed no body still ends', () => {
  const data = Buffer.concat([entry({ name: 'skipped', body: 'z'.repeat(700) }), entry({ name: 'kept', body: 'k' }), END]);
  const seen: string[] = [];
  const r = new TarReader((h) => {
    seen.push(h.path);
    return h.path === 'kept' ? { data: (b) => seen.push(b.toString()), end: () => seen.push('end') } : undefined;
  });
  r.write(data);
  r.end();
  assert.deepEqual(seen, ['skipped', 'kept', 'k', 'end']);
});

test('tar reader: names are cut at a NUL and read as UTF-8; a lone zero block is passed over', () => {
  const latin1 = Buffer.from('caf\xe9', 'latin1');
  const got = pick(
    Buffer.concat([
      entry({ name: Buffer.from('name\0hidden') }),
      entry({ name: 'café' }),
      entry({ name: latin1 }),
      Buffer.alloc(512),
      entry({ name: 'l', type: '2', link: Buffer.from('target\0junk') }),
      pax([['path', Buffer.from('pax\0cut')]]),
      entry({ name: 'x' }),
      END,
    ]),
  );
  assert.deepEqual(
    got.map((e) => e.path),
    ['name', 'café', latin1.toString('utf8'), 'l', 'pax'],
  );
  assert.equal(got[3]!.linkpath, 'target');
});

test('tar reader: sizes in base-256, up to 2^53; negative, larger or garbage numbers are errors', () => {
  const b256 = (n: number, first = 0x80) => {
    const f = Buffer.alloc(12);
    f[0] = first;
    f.writeUIntBE(n, 6, 6);
    return f;
  };
  assert.deepEqual(pick(Buffer.concat([entry({ name: 'big', sizeField: b256(1000), body: 'q'.repeat(1000) }), END]))[0]!.body, 'q'.repeat(1000));
  // a huge declared size is only a truncation
  assert.throws(() => readTar(Buffer.concat([header({ name: 'huge', sizeField: b256(2 ** 47) }), Buffer.alloc(4096)])), /ends inside "huge"/);
  const tooBig = Buffer.alloc(12, 0xff);
  tooBig[0] = 0x80;
  assert.throws(() => readTar(entry({ name: 'x', sizeField: tooBig })), /size is too large/);
  assert.throws(() => readTar(entry({ name: 'x', sizeField: b256(5, 0xff) })), /size is negative/);
  assert.throws(() => readTar(entry({ name: 'x', sizeField: Buffer.from('0000000012x\0') })), /size is not a number/);
  assert.throws(() => readTar(entry({ name: 'x', sizeField: Buffer.from('-1\0') })), /size is not a number/);
  assert.throws(() => readTar(entry({ name: 'x', modeField: Buffer.from('0o755\0') })), /mode is not a number/);
  // spaces before, a space or NUL after, and an empty field: as tar writes them
  assert.equal(readTar(entry({ name: 'x', sizeField: Buffer.from('     12 \0'), body: 'y'.repeat(10) }))[0]!.size, 10);
  assert.equal(readTar(entry({ name: 'x', sizeField: Buffer.alloc(12) }))[0]!.size, 0);
  assert.equal(readTar(entry({ name: 'x', modeField: Buffer.alloc(8) }))[0]!.mode, undefined);
});

test('tar reader: a wrong checksum is an error; a signed sum is accepted', () => {
  assert.throws(() => readTar(Buffer.concat([entry({ name: 'a' }), entry({ name: 'b', checksum: 'wrong' }), END])), /after "a" has a wrong checksum/);
  const high = Buffer.from('h\xe9\xff', 'latin1');
  assert.equal(readTar(Buffer.concat([entry({ name: high, checksum: 'signed' }), END])).length, 1);
  const flipped = Buffer.concat([entry({ name: 'a', body: 'x' }), END]);
  flipped[3] = flipped[3]! ^ 0x20;
  assert.throws(() => readTar(flipped), /the first header has a wrong checksum/);
});

test('tar reader: an archive cut anywhere but between entries is an error that names where', () => {
  const data = Buffer.concat([
    entry({ name: 'first', body: 'a'.repeat(700) }), // 0 .. 1536
    gnuLong('L', LONG), // 1536 .. 1536 + 512 + 512
    entry({ name: 'x', body: 'b' }), // 2560 .. 3584
    pax([['path', 'p']]), // 3584 .. 4608
    entry({ name: 'y' }), // 4608 .. 5120
  ]);
  const cases: Array<[number, RegExp]> = [
    [100, /ends inside the header after its start/],
    [512, /ends inside "first", 700 bytes/],
    [1000, /ends inside "first", 212 bytes/],
    [1300, /ends inside the padding after "first"/],
    [1600, /ends inside the header after "first"/],
    [2048, /ends inside the long-name header after "first"/],
    [2200, /ends inside the long-name header after "first", 180 bytes/],
    [2560, /ends after a pax or long-name header/],
    [3000, /ends inside the header after "first"/],
    [3200, new RegExp(`ends inside the padding after "${LONG}"`)],
    [3584 + 512, /ends inside the pax header after/],
    [4608, /ends after a pax or long-name header/],
    [4700, /ends inside the header after/],
  ];
  for (const [at, why] of cases) {
    for (const chunk of [0, 1, 511]) assert.throws(() => readTar(data.subarray(0, at), chunk), why, `cut at ${at}, chunks of ${chunk}`);
  }
  // on an entry boundary it is a whole archive without its end blocks
  for (const at of [0, 1536, 3584, 5120]) assert.doesNotThrow(() => readTar(data.subarray(0, at)), `cut at ${at}`);
  // a pax header and then the end blocks: no entry for it
  assert.throws(() => readTar(Buffer.concat([pax([['path', 'p']]), END])), /no entry for it/);
  assert.throws(() => readTar(Buffer.concat([gnuLong('K', 'k'), END])), /no entry for it/);
});

test('tar reader: pax records whose length lies are errors, found at once', () => {
  const rec = (s: string) => Buffer.from(s);
  const lies = [
    rec('99 path=short\n'), // longer than the header holds
    rec('5 path=short\n'), // shorter than its key
    rec('0 path=x\n'),
    rec('11 path=abc\n'), // ends in the middle of a record, not at its newline
    rec('path=no length\n'),
    rec('13path=nospc\n'),
    rec(`${'9'.repeat(400)} path=x\n`),
    Buffer.concat([paxRecord('path', 'ok'), rec('3 \n')]),
    rec('16 size=12345678x\n'),
    rec('11 size=-1\n'),
  ];
  for (const body of lies) {
    const data = Buffer.concat([pax(body), entry({ name: 'x' }), END]);
    for (const chunk of [0, 1]) assert.throws(() => readTar(data, chunk), /pax record .* is malformed|pax size is not a size/, body.toString());
  }
  // a global header is checked too, though nothing of it is used
  assert.throws(() => readTar(Buffer.concat([pax(rec('3 x=\n'), 'g'), entry({ name: 'x' }), END])), /malformed/);
  // a pax or long-name header bigger than names need is refused before it is gathered
  assert.throws(() => readTar(header({ name: 'L', type: 'L', size: 64 << 20 })), /more than names need/);
});

test('tar reader: unknown types come through by name; an entry without a name is an error', () => {
  const got = readTar(Buffer.concat([entry({ name: 'sparse', type: 'S' }), entry({ name: 'odd', type: 'Z', body: 'zz' }), entry({ name: 'after' }), END]));
  assert.deepEqual(
    got.map((e) => [e.path, e.type]),
    [
      ['sparse', 'SparseFile'],
      ['odd', '"Z"'],
      ['after', 'File'],
    ],
  );
  assert.throws(() => readTar(Buffer.concat([entry({ name: '' }), END])), /names no entry/);
});

test('tar reader: a failure inside a body stops the reader for good', () => {
  const data = Buffer.concat([entry({ name: 'a', body: 'x' }), entry({ name: 'b', body: 'y' }), END]);
  const r = new TarReader((h) => ({
    data: () => {
      if (h.path === 'a') throw new Error('disk full');
    },
    end: () => {},
  }));
  assert.throws(() => r.write(data), /disk full/);
  assert.throws(() => r.write(Buffer.alloc(512)), /disk full/);
  assert.throws(() => r.end(), /disk full/);
});

test('tar reader: damaged archives give entries or a TarFormatError, never another kind of failure', () => {
  const base = everything();
  let x = 7;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % n;
  };
  let failed = 0;
  for (let round = 0; round < 3000; round++) {
    const data = Buffer.from(base);
    for (let k = 1 + rand(4); k > 0; k--) data[rand(data.length)] = rand(256);
    const cut = round % 3 === 0 ? data.subarray(0, rand(data.length)) : data;
    try {
      readTar(cut, [0, 1, 509][round % 3]);
    } catch (e) {
      assert.ok(e instanceof TarFormatError, String((e as Error).stack));
      failed++;
    }
  }
  assert.ok(failed > 1000, `${failed} of 3000 damaged archives failed`);
});
