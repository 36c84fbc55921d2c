// The WebAssembly xz (a host without the xz program) says what is wrong with a stream in the xz
// program's words, as a CodecError, instead of the decoder's bare return code.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CodecError } from '../../src/codec/error.ts';
import { decompressXz } from '../../src/codec/xz.ts';

const LINE = 'relonix reads xz in WebAssembly where the host has no xz program.\n';
// `xz -6` of LINE twenty times over
const GOOD = Buffer.from(
  '/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4AUnAEtdADkZSdvKbTqQxnKTG8YDTjRPL4ydApRDdxet7uRg+7oVtfX17M+vq/y7Fc7IuepVRBcuG73p+l2xCjrvKNJOhq2D1boSZYRsQuFUAAAAHEdgRC2Hm68AAWeoCgAAAAzfTvmxxGf7AgAAAAAEWVo=',
  'base64',
);

async function decoded(b: Buffer): Promise<string> {
  const out: Buffer[] = [];
  for await (const c of decompressXz(
    (async function* () {
      yield b;
    })(),
    { noHost: true },
  ))
    out.push(Buffer.from(c));
  return Buffer.concat(out).toString();
}

test('the WebAssembly xz decodes a good stream, and says in words what is wrong with a bad one', async () => {
  assert.equal(await decoded(GOOD), LINE.repeat(20));
  const flipped = Buffer.from(GOOD);
  flipped[80]! ^= 0xff;
  const cases: [string, Buffer, RegExp][] = [
    ['cut short', GOOD.subarray(0, GOOD.length - 20), /^the xz stream is corrupt: unexpected end of input$/],
    ['a byte flipped', flipped, /^the xz stream is corrupt: compressed data is corrupt$/],
    ['no xz at all', Buffer.from(LINE), /^the xz stream is corrupt: file format not recognized$/],
  ];
  for (const [what, bytes, words] of cases) {
    await assert.rejects(decoded(bytes), (e: unknown) => {
      assert.ok(e instanceof CodecError, `${what}: ${String(e)}`);
      assert.match(e.message, words, what);
      return true;
    });
  }
});
