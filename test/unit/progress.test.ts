// One shape of progress for every reporter, and the one line a bootstrap shows for it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressText } from '../../src/util/progress.ts';

test('progress: a restore step with its counts, a bar of bytes, the bytes alone, or the text as given', () => {
  assert.equal(progressText({ message: 'reading narinfos' }), 'reading narinfos');
  assert.equal(progressText({ message: 'restored x-hello', done: 3, total: 10 }), 'restored x-hello (3/10)');
  assert.equal(progressText({ received: 512 * 1024, total: 2 * 1024 * 1024 }), `${'█'.repeat(6)}${'░'.repeat(18)} 25% 0.5 MiB / 2.0 MiB`);
  assert.equal(progressText({ received: 3 * 1024 * 1024, total: 1024 * 1024 }).slice(0, 29), `${'█'.repeat(24)} 100%`, 'never past the end');
  assert.equal(progressText({ received: 1024 * 1024 }), '1.0 MiB');
  assert.equal(progressText({ received: 0 }), '');
  assert.equal(progressText('hashed 2/5 changed paths'), 'hashed 2/5 changed paths');
});
