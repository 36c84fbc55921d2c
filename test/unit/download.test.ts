// Downloads from local paths and file:// URLs: copied with the checksum checked, nothing left behind.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { download, resolveSha256 } from '../../src/net/download.ts';
import { RelonixError } from '../../src/util/errors.ts';
import { tempDir } from '../helpers/paths.ts';

const data = randomBytes(6 * (1 << 20) + 12345);
const sha = createHash('sha256').update(data).digest('hex');
const tmp = tempDir('download');
after(() => fs.rm(tmp, { recursive: true, force: true }));

let n = 0;
/** A destination in a directory of its own, so what a download leaves beside it can be listed. */
const fresh = () => path.join(tmp, `d${++n}`, 'nix.tar.xz');
const leftovers = async (dest: string) => (await fs.readdir(path.dirname(dest)).catch(() => [])).sort();

test('download: local paths and file:// URLs are copied with the checksum checked', async () => {
  const src = path.join(tmp, 'local-src.bin');
  await fs.writeFile(src, data);
  const a = await download({ url: src, dest: fresh(), sha256: sha });
  assert.equal(a.sha256, sha);
  const b = await download({ url: pathToFileURL(src).href, dest: fresh() });
  assert.equal(b.sha256, sha);
  assert.ok((await fs.readFile(b.path)).equals(data));
  const dest = fresh();
  await assert.rejects(download({ url: src, dest, sha256: '0'.repeat(64) }), (e: unknown) => e instanceof RelonixError && e.kind === 'integrity');
  assert.deepEqual(await leftovers(dest), []);
  await fs.writeFile(`${src}.sha256`, `${sha}\n`);
  assert.equal(await resolveSha256(src), sha);
});
