// Decoded tar bytes cut along the archive's entries: every byte goes, once and in order, in any
// chunking and across pauses; each entry of a well-formed archive lies whole in one batch (the
// biggest go in pieces); a header that lies about its size costs a split, never a byte.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryBodyBytes, TarBatcher } from '../../src/codec/tar-batches.ts';
import { header } from '../helpers/tar.ts';

/** One entry: its header block and its content padded to whole blocks. */
function entry(name: string, size: number, fill: number, type: 'File' | 'Directory' = 'File'): Buffer {
  const h = header({ name, mode: 0o644, size, type: type === 'File' ? '0' : '5' });
  const body = Buffer.alloc(Math.ceil(size / 512) * 512);
  body.fill(fill, 0, size);
  return Buffer.concat([h, body]);
}

/** An archive of entries of these sizes (0: a directory), with its two end blocks. */
function archive(sizes: number[]): Buffer {
  const parts = sizes.map((s, i) => (s === 0 ? entry(`d${i}/`, 0, 0, 'Directory') : entry(`f${i}`, s, (i % 250) + 1)));
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

/** What a TarBatcher sends, each batch given away as the worker gives it (its buffer detached here). */
function collector(): { batches: Buffer[]; send: (b: ArrayBuffer, at: number, n: number) => void } {
  const batches: Buffer[] = [];
  return {
    batches,
    send: (b, at, n) => {
      const moved = structuredClone(b, { transfer: [b] });
      batches.push(Buffer.from(moved, at, n));
    },
  };
}

/** Feeds `data` in chunks of pseudo-random sizes up to `max`, each a copy the batcher may not keep. */
async function feed(tb: TarBatcher, data: Buffer, max: number, pauseEvery = 0): Promise<void> {
  let x = 11;
  let n = 0;
  for (let off = 0; off < data.length; ) {
    x = (x * 1103515245 + 12345) >>> 0;
    const len = 1 + (x % max);
    const chunk = Buffer.from(data.subarray(off, off + len));
    tb.add(chunk);
    chunk.fill(0xee); // the source reuses its memory
    off += len;
    if (pauseEvery && ++n % pauseEvery === 0) await new Promise((r) => setTimeout(r, 3));
  }
  tb.flush();
}

/** The offsets at which the batches begin, in the stream. */
function starts(batches: Buffer[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const b of batches) {
    out.push(at);
    at += b.length;
  }
  return out;
}

/** Each entry's first and last byte (header to padded end), in the stream. */
function spans(data: Buffer): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let at = 0; at + 512 <= data.length; ) {
    const len = 512 + entryBodyBytes(data.subarray(at, at + 512));
    out.push([at, at + len]);
    at += len;
  }
  return out;
}

test('tar batches: every byte, in order, whatever the chunking; each entry whole in one batch', async () => {
  const small = archive([100, 0, 1, 512, 513, 3000, 0, 5, 20_000, 3]);
  const big = archive([100, 0, 300_000, 2 << 20, 0, 5, (1 << 20) - 512, 1 << 20, 700_000, 3, 9 << 20, 42]);
  for (const [data, max, pauseEvery] of [
    [small, 1, 0],
    [small, 700, 0],
    [small, 700, 5],
    [big, 65_536, 0],
    [big, 3 << 20, 0],
    [big, 65_536, 3],
    [big, 4096, 50],
  ] as const) {
    const c = collector();
    await feed(new TarBatcher(c.send, 1), data, max, pauseEvery);
    assert.ok(Buffer.concat(c.batches).equals(data), `chunks up to ${max} bytes, a pause every ${pauseEvery}`);
    const cuts = new Set(starts(c.batches));
    for (const [a, b] of spans(data)) {
      for (const cut of cuts) assert.ok(cut <= a || cut >= b, `chunks up to ${max}: the entry at ${a}..${b} is split at ${cut}`);
    }
    assert.ok(
      c.batches.every((b) => b.length % 512 === 0),
      'every batch is whole blocks',
    );
  }
});

test('tar batches: an entry too big to go whole goes in pieces; a lying header costs a split, not a byte', async () => {
  const huge = archive([10, 65 << 20, 10]);
  const c = collector();
  await feed(new TarBatcher(c.send, 1), huge, 1 << 20);
  assert.ok(Buffer.concat(c.batches).equals(huge));
  assert.ok(Math.max(...c.batches.map((b) => b.length)) <= 1 << 20, 'no batch holds the whole 65 MiB entry');

  // sizes the parser on the other side would read otherwise (a pax record replaces them), or that run past the end
  const lying = archive([1000, 2000, 3000]);
  lying.write('00000077777\0', 124, 'latin1'); // the first header claims 32 KiB
  const tail = Buffer.concat([entry('last', 50 << 20, 1).subarray(0, 512), Buffer.alloc(4096, 9)]); // cut short
  for (const data of [lying, Buffer.concat([lying, tail]), Buffer.alloc(3000, 0x41)]) {
    const d = collector();
    await feed(new TarBatcher(d.send, 1), data, 1500);
    assert.ok(Buffer.concat(d.batches).equals(data));
  }
});

test('tar batches: a pause sends the entries that are whole; the one in progress waits for its end', async () => {
  const data = archive([100_000, 400_000]);
  const c = collector();
  const tb = new TarBatcher(c.send, 1);
  const firstEnd = 512 + 100_352;
  tb.add(data.subarray(0, firstEnd + 512 + 1000)); // the first entry, and the start of the second
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    c.batches.map((b) => b.length),
    [firstEnd],
  );
  tb.add(data.subarray(firstEnd + 512 + 1000));
  tb.flush();
  assert.ok(Buffer.concat(c.batches).equals(data));
  assert.equal(c.batches[1]!.length, data.length - firstEnd);
});

test('tar batches: sizes in octal, with spaces or NULs, and in base-256', () => {
  const h = Buffer.alloc(512);
  h.write('00000001000 ', 124, 'latin1');
  assert.equal(entryBodyBytes(h), 512);
  h.fill(0, 124, 136);
  h.write('    1001\0', 124, 'latin1');
  assert.equal(entryBodyBytes(h), 1024);
  h.fill(0, 124, 136);
  assert.equal(entryBodyBytes(h), 0);
  h[124] = 0x80;
  h.writeUIntBE(0x2_0000_0001, 130, 6); // 8 GiB and a byte
  assert.equal(entryBodyBytes(h), 0x2_0000_0200);
});
