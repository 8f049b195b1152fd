import { ClassifiedError } from '../../src/worker/final-failure.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DelayedError, RateLimitError, UnrecoverableError, WaitingError, type Job, type Queue } from 'bullmq';
import { loadConfig } from '../../src/shared/config.js';
import { BudgetError, InputError, InputUnavailableError, StorageError, UpstreamError, type UpstreamErrorKind } from '../../src/shared/errors.js';
import type { JobData } from '../../src/shared/job-data.js';
import type { FinalizeInput, FinalizeOutcome, JobRecords } from '../../src/shared/job-record.js';
import { redisKeys } from '../../src/shared/keys.js';
import { createLogger } from '../../src/shared/logger.js';
import type { RedisClient } from '../../src/shared/redis.js';
import { PoisonJobError, handleFailure, type FailureContext, type Ledger, type OutcomeDeps } from '../../src/worker/outcome.js';

/**
 * What each kind of failure becomes in BullMQ's control flow (SPEC §1, §7), through
 * handleFailure alone: the queue, the job records, Redis and the job are plain objects
 * that write down what they were asked to do.
 */
type Call = [name: string, ...args: unknown[]];

interface Fixture {
  deps: OutcomeDeps;
  ctx: FailureContext;
  calls: Call[];
  logged: () => { level: number; msg: string }[];
}

function fixture(opts: { attemptsMade?: number; bullAttempts?: number; attemptsStarted?: number; ledger?: Partial<Ledger>; aborted?: boolean; alreadyPaused?: boolean; alreadyFinal?: boolean; env?: Record<string, string> } = {}): Fixture {
  const calls: Call[] = [];
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(l) } });
  const config = loadConfig({ FLUX_API_KEY: 'sk-test-1234567', S3_BUCKET: 'my-bucket', JOB_ATTEMPTS: '5', MAX_AMBIGUOUS_RETRIES: '2', BACKOFF_BASE_MS: '1000', ...opts.env }, 'worker');
  const queue = {
    rateLimit: async (ms: number) => void calls.push(['queue.rateLimit', ms]),
    pause: async () => void calls.push(['queue.pause']),
  } as unknown as Queue;
  let paused = opts.alreadyPaused ?? false;
  const redis = {
    set: async (key: string, value: string, nx: string) => {
      calls.push(['redis.set', key, JSON.parse(value).reason, nx]);
      if (paused) return null;
      paused = true;
      return 'OK';
    },
    xadd: async (_key: string, ...args: string[]) => {
      calls.push(['event', args[args.indexOf('type') + 1], JSON.parse(args[args.indexOf('data') + 1] ?? '{}')]);
      return '1-0';
    },
  } as unknown as RedisClient;
  const records = {
    finalize: async (jobId: string, input: FinalizeInput): Promise<FinalizeOutcome> => {
      calls.push(['records.finalize', jobId, input]);
      return { recorded: !opts.alreadyFinal, eventId: '1-0', batchFinished: false };
    },
  } as unknown as JobRecords;
  const job = {
    id: 'job-1',
    opts: { attempts: opts.bullAttempts ?? 5 },
    attemptsMade: opts.attemptsMade ?? 0,
    attemptsStarted: opts.attemptsStarted ?? 1,
    moveToWait: async (token?: string) => void calls.push(['job.moveToWait', token]),
    moveToDelayed: async (at: number, token?: string) => void calls.push(['job.moveToDelayed', at, token]),
  } as unknown as Job<JobData>;
  const controller = new AbortController();
  if (opts.aborted) controller.abort();
  const deps: OutcomeDeps = {
    config,
    queue,
    records,
    control: { queue, redis, keys: redisKeys('t', 'generate'), eventsMaxLen: 100 },
    log,
    onRateLimited: (ms) => void calls.push(['onRateLimited', ms]),
    onFinalFailure: (jobId, reason) => void calls.push(['onFinalFailure', jobId, reason]),
    onRetry: (jobId, reason) => void calls.push(['onRetry', jobId, reason]),
    onFinalized: (outcome, batchId) => void calls.push(['onFinalized', outcome.recorded, batchId]),
  };
  const ctx: FailureContext = {
    job,
    token: 'lock-token',
    signal: controller.signal,
    ledger: { attempts: 1, possiblyBilled: 0, ...opts.ledger },
    batchId: 'batch-1',
    metadata: { user: 'u1' },
    webhook: undefined,
    log,
  };
  return { deps, ctx, calls, logged: () => lines.map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

/** Run handleFailure; it always throws: return what, with the calls it made. */
async function outcome(f: Fixture, err: unknown): Promise<{ thrown: unknown; calls: Call[] }> {
  const thrown = await handleFailure(f.deps, f.ctx, err).then(
    () => assert.fail('handleFailure returned instead of throwing'),
    (e: unknown) => e,
  );
  return { thrown, calls: f.calls };
}

const upstream = (kind: UpstreamErrorKind, status?: number, retryAfterMs?: number) => new UpstreamError({ kind, status, detail: `${kind} detail`, retryAfterMs });
const s3Error = (kind: 'config' | 'request' | 'outage') =>
  new StorageError({ doing: 'writing images/b/j/0.png', code: kind === 'request' ? 'KeyTooLongError' : kind === 'config' ? 'NoSuchBucket' : 'SlowDown', status: kind === 'outage' ? 503 : 400, detail: 'S3 said no', kind });

/** The calls a final failure makes, in order, with the job.failed event SPEC §5 describes. */
function failedCalls(reason: string, ledger: Ledger = { attempts: 1, possiblyBilled: 0 }): Call[] {
  const data = { jobId: 'job-1', batchId: 'batch-1', tenant: 'default', error: reason, attempts: ledger.attempts, possibly_billed: ledger.possiblyBilled, metadata: { user: 'u1' } };
  return [
    ['records.finalize', 'job-1', { state: 'failed', batchId: 'batch-1', tenant: 'default', error: reason, event: { type: 'job.failed', data }, webhook: undefined }],
    ['onFinalized', true, 'batch-1'],
    ['onFinalFailure', 'job-1', reason],
  ];
}

async function assertFails(f: Fixture, err: unknown, reason: string): Promise<void> {
  const { thrown, calls } = await outcome(f, err);
  assert.ok(thrown instanceof UnrecoverableError, `fails now: ${String(thrown)}`);
  assert.equal(thrown.message, reason);
  assert.deepEqual(calls, failedCalls(reason, f.ctx.ledger));
}

async function assertRetried(f: Fixture, err: unknown, reason: string): Promise<void> {
  const { thrown, calls } = await outcome(f, err);
  // Not Unrecoverable, not a BullMQ control error: BullMQ backs off and retries it; typed as
  // classified, so a final failure BullMQ decides later keeps this reason as it is.
  assert.ok(thrown instanceof ClassifiedError && !(thrown instanceof UnrecoverableError), `a retryable, classified error: ${String(thrown)}`);
  assert.equal(thrown.message, reason);
  assert.deepEqual(calls, [['onRetry', 'job-1', reason]], 'no final state is written');
}

test('permanent upstream error, bad input, budget and poison: the job fails now with its reason and one job.failed', async () => {
  await assertFails(fixture(), upstream('permanent', 422), 'permanent: HTTP 422: permanent detail');
  await assertFails(fixture(), new InputError('input_image_2', 'not an image'), 'permanent: input_image_2: not an image');
  await assertFails(fixture(), new BudgetError('batch-1', 50), 'budget: batch batch-1 reached 50 megapixels');
  await assertFails(fixture(), new PoisonJobError('job data is not an object'), 'permanent: job data is not an object');
  await assertFails(fixture({ ledger: { attempts: 3, possiblyBilled: 1 } }), upstream('permanent', 400), 'permanent: HTTP 400: permanent detail');
});

test('a job that is already final fails without telling onFinalized again', async () => {
  const { thrown, calls } = await outcome(fixture({ alreadyFinal: true }), upstream('permanent', 422));
  assert.ok(thrown instanceof UnrecoverableError);
  assert.deepEqual(calls.map((c) => c[0]), ['records.finalize', 'onFinalFailure']);
});

test('429: the whole queue is rate limited for Retry-After (5 s without one, at least 100 ms); no attempt spent, nothing final', async () => {
  for (const [retryAfterMs, expected] of [[2500, 2500], [undefined, 5000], [10, 100]] as const) {
    const { thrown, calls } = await outcome(fixture(), upstream('rate_limited', 429, retryAfterMs));
    assert.ok(thrown instanceof RateLimitError, String(thrown));
    assert.deepEqual(calls, [['queue.rateLimit', expected], ['onRateLimited', expected]]);
  }
  const passed = new RateLimitError();
  const { thrown, calls } = await outcome(fixture(), passed);
  assert.equal(thrown, passed, "BullMQ's own RateLimitError passes through untouched");
  assert.deepEqual(calls, []);
});

test('401/402/403: the queue is paused fleet-wide (queue.paused once), the job goes back to wait', async () => {
  const f = fixture();
  const { thrown, calls } = await outcome(f, upstream('account', 402));
  assert.ok(thrown instanceof WaitingError, String(thrown));
  assert.deepEqual(calls, [
    ['redis.set', 't:pause-reason', 'account: HTTP 402: account detail', 'NX'],
    ['queue.pause'],
    ['event', 'queue.paused', { reason: 'account: HTTP 402: account detail', status: 402 }],
    ['job.moveToWait', 'lock-token'],
  ]);
  assert.ok(f.logged().some((l) => l.level === 60 && /ACCOUNT-WIDE ERROR/.test(l.msg)), 'a fatal line says what to do');

  const again = fixture({ alreadyPaused: true });
  const second = await outcome(again, upstream('account', 401));
  assert.ok(second.thrown instanceof WaitingError);
  assert.deepEqual(second.calls.map((c) => c[0]), ['redis.set', 'queue.pause', 'job.moveToWait'], 'already paused: no second queue.paused');
  assert.ok(!again.logged().some((l) => l.level === 60), 'and no second fatal line');
});

test('transient: retried with backoff while attempts are left (JOB_ATTEMPTS and the BullMQ attempts), then fails', async () => {
  await assertRetried(fixture(), upstream('transient', 503), 'transient: HTTP 503: transient detail');
  await assertRetried(fixture({ ledger: { attempts: 4 }, attemptsMade: 3 }), upstream('transient', 500), 'transient: HTTP 500: transient detail');
  await assertFails(fixture({ ledger: { attempts: 5 } }), upstream('transient', 503), 'transient: HTTP 503: transient detail');
  await assertFails(fixture({ attemptsMade: 4, bullAttempts: 5 }), upstream('transient', 503), 'transient: HTTP 503: transient detail');
  await assertFails(fixture({ bullAttempts: 1 }), upstream('transient', 503), 'transient: HTTP 503: transient detail');
});

test('ambiguous: retried, but at most MAX_AMBIGUOUS_RETRIES possibly billed calls past the first', async () => {
  await assertRetried(fixture({ ledger: { possiblyBilled: 1 } }), upstream('ambiguous', 200), 'ambiguous: HTTP 200: ambiguous detail');
  await assertRetried(fixture({ ledger: { possiblyBilled: 2 } }), upstream('ambiguous', 200), 'ambiguous: HTTP 200: ambiguous detail');
  await assertFails(
    fixture({ ledger: { attempts: 3, possiblyBilled: 3 } }),
    upstream('ambiguous', 200),
    'ambiguous: HTTP 200: ambiguous detail (gave up after 3 possibly billed calls, MAX_AMBIGUOUS_RETRIES=2)',
  );
  await assertFails(fixture({ ledger: { attempts: 5, possiblyBilled: 1 } }), upstream('ambiguous', 200), 'ambiguous: HTTP 200: ambiguous detail');
});

test('S3 outage: the job is delayed with backoff (BACKOFF_BASE_MS × 2^runs, jitter ½, at most a minute), no attempt spent', async () => {
  for (const [attemptsStarted, max] of [[1, 2000], [3, 8000], [12, 60_000]] as const) {
    const before = Date.now();
    const { thrown, calls } = await outcome(fixture({ attemptsStarted }), s3Error('outage'));
    assert.ok(thrown instanceof DelayedError, String(thrown));
    assert.equal(calls.length, 1);
    const [name, at, token] = calls[0] ?? [];
    assert.equal(name, 'job.moveToDelayed');
    assert.equal(token, 'lock-token');
    const delay = (at as number) - before;
    assert.ok(delay >= max / 2 - 1 && delay <= max + 1000, `run ${attemptsStarted}: delayed ${delay} ms, expected ${max / 2}–${max}`);
  }
});

test('S3 misconfigured (wrong bucket or credentials): paused fleet-wide like an account error; S3 refusing the request: fails now', async () => {
  const { thrown, calls } = await outcome(fixture(), s3Error('config'));
  assert.ok(thrown instanceof WaitingError, String(thrown));
  const reason = 'storage: writing images/b/j/0.png failed: NoSuchBucket (HTTP 400): S3 said no';
  assert.deepEqual(calls, [['redis.set', 't:pause-reason', reason, 'NX'], ['queue.pause'], ['event', 'queue.paused', { reason }], ['job.moveToWait', 'lock-token']]);

  await assertFails(fixture(), s3Error('request'), 'permanent: S3 400 KeyTooLongError writing images/b/j/0.png: S3 said no');
});

test('an input image that cannot be read for now, and any unexpected error: retried, then failed with their reason', async () => {
  await assertRetried(fixture(), new InputUnavailableError('input_image', 'HTTP 503'), 'transient: input_image: HTTP 503');
  await assertRetried(fixture(), new TypeError('x is not a function'), 'internal: x is not a function');
  await assertRetried(fixture(), 'a thrown string', 'internal: a thrown string');
  await assertFails(fixture({ ledger: { attempts: 5 } }), new TypeError('x is not a function'), 'internal: x is not a function');
  const f = fixture();
  await outcome(f, new TypeError('boom'));
  assert.ok(f.logged().some((l) => l.level === 50 && l.msg === 'unexpected error in a run'), 'an unexpected error is logged as one');
});

test('a run cut off by shutdown goes back to wait with its checkpoint, whatever the error', async () => {
  for (const err of [upstream('permanent', 422), upstream('transient'), s3Error('outage'), new Error('aborted')]) {
    const { thrown, calls } = await outcome(fixture({ aborted: true }), err);
    assert.ok(thrown instanceof WaitingError, String(thrown));
    assert.deepEqual(calls, [['job.moveToWait', 'lock-token']], 'nothing final, no attempt spent');
  }
});
