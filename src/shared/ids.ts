import { QueueKeys } from 'bullmq';

/**
 * SPEC §7 Ids. A job id is BullMQ's job id verbatim, so the job's hash lives at
 * `{prefix}:{queue}:{id}`, next to the keys BullMQ keeps for the queue itself
 * (`{prefix}:{queue}:marker`, `…:meta`, `…:wait`, …). An id equal to one of those names
 * would make BullMQ take the queue's key for the job (or overwrite it: a hash written
 * over `marker` makes every worker fail on WRONGTYPE), so such ids are refused. Batch
 * ids form S3 keys (`{S3_KEY_PREFIX}/{B}/…`), so `.` and `..` are refused there too.
 */

export const JOB_ID_RE = /^[A-Za-z0-9._~-]{1,128}$/;
export const BATCH_ID_RE = /^[A-Za-z0-9._~-]{1,100}$/;
/** SPEC §8 Tenants: who a job is for; `default` when the envelope names none. */
export const TENANT_RE = /^[A-Za-z0-9._-]{1,64}$/;
export const DEFAULT_TENANT = 'default';
export const TENANT_RULE = 'must be 1–64 characters of A–Z a–z 0–9 . _ -';

/** SPEC §7's own list: a floor, so a BullMQ upgrade can only add names. */
const SPEC_RESERVED = [
  'meta', 'events', 'id', 'wait', 'active', 'paused', 'completed', 'failed', 'delayed', 'prioritized',
  'waiting-children', 'limiter', 'marker', 'stalled', 'stalled-check', 'pc', 'de', 'repeat',
];

/**
 * Second segments the pinned BullMQ builds outside `QueueKeys.getKeys`: `metrics:{completed,failed}`
 * (a job `metrics` would own `metrics:failed` as its failed-children set), deduplication's
 * `dn:{id}`, and the legacy `priority` set that BullMQ's migration deletes.
 */
const BULLMQ_OTHER_SEGMENTS = ['metrics', 'dn', 'priority'];

/** The names BullMQ keeps under the queue's key, read from the pinned version itself. */
function bullmqQueueKeyNames(): string[] {
  return Object.keys(new QueueKeys().getKeys('q')).filter((name) => name !== '');
}

/**
 * Every job id that names a key of the queue itself. fluxq keeps nothing of its own under
 * `{prefix}:{queue}:` (its keys are `{prefix}:{name}`, see keys.ts, and QUEUE_NAME may not
 * be one of those names), so BullMQ's names are the whole list. Case-sensitive like Redis.
 */
export const RESERVED_JOB_IDS: ReadonlySet<string> = new Set([...SPEC_RESERVED, ...bullmqQueueKeyNames(), ...BULLMQ_OTHER_SEGMENTS]);

export const JOB_ID_RULE = '1–128 characters of A–Z a–z 0–9 . _ ~ -, not all digits, not "." or "..", and not a name BullMQ keeps under the queue\'s key';
export const BATCH_ID_RULE = '1–100 characters of A–Z a–z 0–9 . _ ~ -, not "." or ".."';

const isDots = (id: string) => id === '.' || id === '..';

/** Why `id` cannot be a job id (a message for the field `id`), or undefined when it can. */
export function jobIdProblem(id: string): string | undefined {
  if (!JOB_ID_RE.test(id)) return `must be ${JOB_ID_RULE}`;
  if (/^\d+$/.test(id)) return `must not be all digits (BullMQ keeps integer ids for itself); ids are ${JOB_ID_RULE}`;
  if (isDots(id)) return `must not be "${id}" (it would be a path segment of the image keys); ids are ${JOB_ID_RULE}`;
  if (RESERVED_JOB_IDS.has(id)) {
    return `must not be "${id}": BullMQ keeps a key of that name under the queue's key (reserved: ${[...RESERVED_JOB_IDS].join(', ')}); ids are ${JOB_ID_RULE}`;
  }
  return undefined;
}

export function isValidJobId(id: string): boolean {
  return jobIdProblem(id) === undefined;
}

/** Why `id` cannot be a batch id (a message for the field `batch`), or undefined when it can. */
export function batchIdProblem(id: string): string | undefined {
  if (!BATCH_ID_RE.test(id)) return `must be ${BATCH_ID_RULE}`;
  if (isDots(id)) return `must not be "${id}" (it would be a path segment of the image keys); batch ids are ${BATCH_ID_RULE}`;
  return undefined;
}

export function isValidBatchId(id: string): boolean {
  return batchIdProblem(id) === undefined;
}
