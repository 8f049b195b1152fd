/** Assertions about what the fleet did, shared by the rate-limit tests on one Redis and on a cluster. */
import assert from 'node:assert/strict';
import type { CallRecord } from '../../src/demo/fake-flux.js';
import type { JobStatus } from '../../src/producer/job-status.js';

/**
 * Exactly one call got a 429 with Retry-After `windowMs`; no call from any worker arrived
 * during the window (the fleet learns of the 429 when the answer reaches a worker, well
 * under 100 ms here); work resumed after it; the limited job spent no attempt. Job ids
 * are `rl-N` for prompts `rl N`.
 */
export function assertQuietAfter429(calls: readonly CallRecord[], done: readonly JobStatus[], windowMs: number): void {
  const c429 = calls.filter((c) => c.status === 429);
  assert.equal(c429.length, 1, 'one call got the 429');
  const answeredAt = c429[0]?.endedAt ?? 0;
  const from = answeredAt + 100;
  const to = answeredAt + windowMs;
  const inWindow = calls.filter((c) => c.at >= from && c.at < to);
  assert.deepEqual(inWindow.map((c) => ({ at: c.at - answeredAt, prompt: c.prompt })), [], 'no request from any worker during the Retry-After window');
  assert.ok(calls.some((c) => c.at >= to), 'work resumed after the window');
  const limitedId = (c429[0]?.prompt ?? '').replace('rl ', 'rl-');
  assert.equal(done.find((d) => d.id === limitedId)?.result?.attempts, 1, 'the 429 spent no attempt');
}

/**
 * Rebuild BullMQ's fixed limiter windows from job start times (each opens at the first
 * start after the previous one closed) and check none holds more than `max` starts.
 *
 * A start time is `processedOn`: the worker's clock when it *sent* moveToActive, while
 * the window is opened and expired by Redis when the script *runs*. A start sent
 * shortly before a window's end may run after it, in the next window: starts within
 * `slackMs` of a rebuilt window's end count for the next one. A missing limiter still
 * fails: its starts come within a few ms of each other.
 */
export function assertFixedWindows(starts: readonly number[], max: number, durationMs: number, minWindows: number, slackMs = 100): void {
  const sorted = [...starts].sort((x, y) => x - y);
  const t0 = sorted[0] ?? 0;
  const windows: number[][] = [];
  for (const at of sorted) {
    const w = windows.at(-1);
    if (w && at < (w[0] as number) + durationMs - slackMs) w.push(at);
    else windows.push([at]);
  }
  for (const w of windows) assert.ok(w.length <= max, `a window held ${w.length} starts: ${w.map((x) => x - t0).join(', ')}`);
  assert.ok(windows.length >= minWindows, `${sorted.length} starts at ${max} per window need at least ${minWindows} windows`);
}
