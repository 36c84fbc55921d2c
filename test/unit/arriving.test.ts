// A download's bytes read while they arrive: in file order from the first byte, what an earlier run
// left read from the part, the rest from the finished file; a download that starts over, or fails,
// stops the reader with an error rather than handing it wrong bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ArrivingBytes } from '../../src/net/arriving.ts';
import { tempDir } from '../helpers/paths.ts';

const tmp = tempDir('arriving');
after(() => fs.rm(tmp, { recursive: true, force: true }));
const data = randomBytes(3 * (1 << 20) + 777);

async function readAll(a: ArrivingBytes): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of a) out.push(b);
  return Buffer.concat(out);
}

test('arriving: what an earlier run left comes from the part, then the body as it arrives, then what only the file holds', async () => {
  const part = path.join(tmp, 'a.part');
  const whole = path.join(tmp, 'a');
  // an earlier run left the first 1 MiB + 5 in the part
  const left = (1 << 20) + 5;
  await fs.writeFile(part, data.subarray(0, left));
  const a = new ArrivingBytes(part);
  const reading = readAll(a);
  // this run's body, in pieces, as the connection brings them
  const bodyEnd = data.length - 1000;
  for (let at = left; at < bodyEnd; at += 65536) {
    a.push(data.subarray(at, Math.min(at + 65536, bodyEnd)), at);
    await new Promise((r) => setImmediate(r));
  }
  // the last 1000 bytes never came as a body here (a 416 for an already complete part, say)
  await fs.writeFile(whole, data);
  a.end(whole, data.length);
  assert.ok((await reading).equals(data));
});

test('arriving: a download that starts the file over stops the reader instead of splicing', async () => {
  const a = new ArrivingBytes(path.join(tmp, 'none.part'));
  const reading = readAll(a);
  a.push(data.subarray(0, 1000), 0);
  a.push(data.subarray(1000, 2000), 1000);
  a.push(data.subarray(0, 500), 0);
  await assert.rejects(reading, /started the file over/);
});

test('arriving: a failed download stops the reader with its error', async () => {
  const a = new ArrivingBytes(path.join(tmp, 'none.part'));
  const reading = readAll(a);
  a.push(data.subarray(0, 1000), 0);
  a.fail(new Error('connection reset'));
  await assert.rejects(reading, /connection reset/);
});

test('arriving: a reader far behind the download is dropped, not left to hold the whole file in memory', async () => {
  const a = new ArrivingBytes(path.join(tmp, 'none.part'));
  const big = Buffer.alloc(1 << 20);
  for (let i = 0; i < 65; i++) a.push(big, i * big.length);
  await assert.rejects(readAll(a), /fell more than 64 MiB behind/);
});

test('arriving: a finished file shorter than the download said is an error, not a short read', async () => {
  const whole = path.join(tmp, 'short');
  await fs.writeFile(whole, data.subarray(0, 100));
  const a = new ArrivingBytes(path.join(tmp, 'none.part'));
  a.end(whole, 200);
  await assert.rejects(readAll(a), /holds fewer bytes than the download said/);
});
