// Where a download resumes from, given its part and the sidecar: with a validator, with only a
// known sha256, or not at all.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PartMeta, resumeFrom } from '../../src/net/download.ts';

const url = 'http://127.0.0.1:1/nix.tar.xz';
const sha = 'a'.repeat(64);

test('resume: a validator resumes with If-Range (ETag first, else Last-Modified)', () => {
  assert.deepEqual(resumeFrom({ url, etag: '"e1"', lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT', total: 100 }, 40, url, undefined), {
    offset: 40,
    ifRange: '"e1"',
  });
  assert.deepEqual(resumeFrom({ url, lastModified: 'Mon, 01 Jan 2024 00:00:00 GMT' }, 40, url, sha), { offset: 40, ifRange: 'Mon, 01 Jan 2024 00:00:00 GMT' });
});

test('resume: without validators only a known sha256, the one the part was fetched for, allows Range', () => {
  const bare: PartMeta = { url, total: 100, sha256: sha };
  assert.deepEqual(resumeFrom(bare, 40, url, sha), { offset: 40 }, 'Range without If-Range: the final hash decides');
  assert.deepEqual(resumeFrom(bare, 40, url, undefined), { offset: 0 }, 'nothing could tell a changed file');
  assert.deepEqual(resumeFrom(bare, 40, url, 'b'.repeat(64)), { offset: 0 }, 'the part was for another file');
  assert.deepEqual(resumeFrom({ url, total: 100 }, 40, url, sha), { offset: 0 }, 'a part of unknown purpose');
});

test('resume: no part, another URL, no sidecar or a part longer than the file start over', () => {
  const meta: PartMeta = { url, etag: '"e1"', total: 100, sha256: sha };
  assert.deepEqual(resumeFrom(meta, 0, url, sha), { offset: 0 });
  assert.deepEqual(resumeFrom(meta, 40, `${url}?mirror=2`, sha), { offset: 0 });
  assert.deepEqual(resumeFrom(undefined, 40, url, sha), { offset: 0 });
  assert.deepEqual(resumeFrom(meta, 101, url, sha), { offset: 0 });
  assert.deepEqual(resumeFrom(meta, 100, url, sha), { offset: 100, ifRange: '"e1"' }, 'a complete part asks once more (416 says it is done)');
});
