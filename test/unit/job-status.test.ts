import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getJobStatus, type JobStatusDeps } from '../../src/producer/job-status.js';

test('a job that finishes between the status reads is reported with its reason, not as failed without one', async () => {
  // First read: no final record yet, BullMQ's job still active; by the time its state is
  // asked, the worker has recorded the failure and BullMQ has moved the job.
  let reads = 0;
  const reason = 'permanent: input_image: https://images.example.test/x.png not found (HTTP 404)';
  const deps = {
    records: {
      get: async () => (reads <= 1 ? { attempts: 0, possiblyBilled: 0 } : { state: 'failed', error: reason, attempts: 0, possiblyBilled: 0 }),
    },
    queue: {
      getJob: async () => {
        reads++;
        return reads <= 1
          ? { data: { v: 1, params: { prompt: 'p' } }, finishedOn: undefined, failedReason: undefined, getState: async () => 'failed' }
          : { data: { v: 1, params: { prompt: 'p' } }, finishedOn: 1, failedReason: reason, getState: async () => 'failed' };
      },
      isPaused: async () => false,
    },
  } as unknown as JobStatusDeps;
  const st = await getJobStatus(deps, 'race');
  assert.equal(st?.state, 'failed');
  assert.equal(st?.error, reason);
  assert.equal(reads, 2);
});
