// The one retry policy and the one concurrency limit: what is retried, how long it waits, what a
// caller sees when the attempts are spent, and how many jobs run at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RelonixError } from '../../src/util/errors.ts';
import { Limit, pool } from '../../src/util/pool.ts';
import { backoffMs, isTransient, POLICY, retry, retryableStatus, spent, TransientError } from '../../src/util/retry.ts';

test('retry: 408, 425, 429 and 5xx are worth another try, but not 501 or 505; other statuses and request errors are not', () => {
  for (const s of [408, 425, 429, 500, 502, 503, 504, 599]) assert.equal(retryableStatus(s), true, String(s));
  for (const s of [200, 301, 400, 401, 403, 404, 405, 410, 416, 501, 505]) assert.equal(retryableStatus(s), false, String(s));
  assert.equal(isTransient(new TransientError('cut')), true);
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']) {
    assert.equal(isTransient(Object.assign(new Error(code), { code })), true, code);
  }
  assert.equal(isTransient(Object.assign(new Error('full'), { code: 'ENOSPC' })), false);
  assert.equal(isTransient(new RelonixError('404', { kind: 'network' })), false);
  assert.equal(isTransient(new Error('a bug')), false);
});

test('retry: the wait doubles from the first delay up to the cap, half of it random', () => {
  const o = { minRetryDelayMs: 100, maxRetryDelayMs: 1000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 9].map((a) => backoffMs(a, o, 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.deepEqual(
    [0, 1, 2, 3, 4, 9].map((a) => backoffMs(a, o, 0)),
    [50, 100, 200, 400, 500, 500],
  );
  assert.equal(backoffMs(0, {}, 1), 500, 'the default first delay');
});

test('retry: a build waits after a failed batch of pushes from 1 s, doubling up to 30 s, by the same backoff', () => {
  assert.deepEqual(
    [0, 1, 2, 4, 5, 20].map((a) => backoffMs(a, POLICY.buildBatch, 1)),
    [1000, 2000, 4000, 16_000, 30_000, 30_000],
  );
  assert.equal(backoffMs(0, POLICY.buildBatch, 0), 500);
  assert.deepEqual(POLICY.transfer, { retries: 6, minRetryDelayMs: 500, maxRetryDelayMs: 15_000 }, 'the defaults of every retry');
});

test('retry: transient failures are retried up to the limit, anything else is thrown at once', async () => {
  let calls = 0;
  assert.equal(await retry(async (attempt) => (++calls < 3 ? Promise.reject(new TransientError(`try ${attempt}`)) : 'ok'), { minRetryDelayMs: 1 }), 'ok');
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new TransientError('down');
      },
      { retries: 2, minRetryDelayMs: 1 },
    ),
    /down/,
  );
  assert.equal(calls, 3, 'one attempt and two retries');
  calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new RelonixError('refused', { kind: 'usage' });
      },
      { minRetryDelayMs: 1 },
    ),
    /refused/,
  );
  assert.equal(calls, 1);
});

test('retry: once spent, a transient failure is a network error with the fix; others pass through', () => {
  const e = spent(new TransientError('HTTP 503'), 'fetching x failed', 'try later');
  assert.ok(e instanceof RelonixError);
  assert.equal(e.kind, 'network');
  assert.equal(e.message, 'fetching x failed: HTTP 503');
  assert.equal(e.hint, 'try later');
  const usage = new RelonixError('bad', { kind: 'usage' });
  assert.equal(spent(usage, 'x', 'y'), usage);
  const bug = new TypeError('a bug');
  assert.equal(spent(bug, 'x', 'y'), bug);
});

test('pool: at most n at once, results in order, nothing new after a failure', async () => {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const out = await pool([5, 1, 4, 2, 3, 0], 2, async (x, i) => {
    started.push(i);
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, x));
    running--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30, 0]);
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5], 'handed out in order');
  const ran: number[] = [];
  await assert.rejects(
    pool([0, 1, 2, 3, 4], 1, async (x) => {
      ran.push(x);
      if (x === 1) throw new Error('second fails');
    }),
    /second fails/,
  );
  assert.deepEqual(ran, [0, 1]);
  assert.deepEqual(await pool([], 4, async () => 1), []);
});

test('limit: a freed slot goes to the next waiter in order', async () => {
  const limit = new Limit(1);
  const order: string[] = [];
  let release!: () => void;
  const first = limit.run(() => new Promise<void>((r) => (release = r)).then(() => order.push('first')));
  const second = limit.run(async () => order.push('second'));
  const third = limit.run(async () => order.push('third'));
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(order, [], 'the others wait while the slot is held');
  release();
  await Promise.all([first, second, third]);
  assert.deepEqual(order, ['first', 'second', 'third']);
});

test('limit: an urgent job waits ahead of those already waiting', async () => {
  const limit = new Limit(1);
  const order: string[] = [];
  let release!: () => void;
  const first = limit.run(() => new Promise<void>((r) => (release = r)).then(() => order.push('first')));
  const second = limit.run(async () => order.push('second'));
  const third = limit.run(async () => order.push('third'), true);
  release();
  await Promise.all([first, second, third]);
  assert.deepEqual(order, ['first', 'third', 'second']);
});
