import type { JobRecords } from '../shared/job-record.js';
import type { Logger } from '../shared/logger.js';

/**
 * An upstream call in flight is leased in the job's record (`JobRecords.startCall`): while
 * the lease runs, another run of the same job (after a lost BullMQ lock) leaves the call
 * to this run; once it ran out, that run counts the call as orphaned (possibly billed).
 * The lease lasts LOCK_DURATION_MS/2 and is renewed every quarter of LOCK_DURATION_MS, so
 * a dead run's lease ends no later than its BullMQ lock does (see BEGIN_RUN).
 */
export function callLeaseMs(lockDurationMs: number): number {
  return Math.max(1, Math.floor(lockDurationMs / 2));
}

/** Renew call `opId`'s lease until `release()`; never throws (a missed renewal is logged). */
export function holdCallLease(records: JobRecords, jobId: string, tenant: string, opId: string, leaseMs: number, log: Logger): { release(): void } {
  let warned = false;
  let released = false;
  const timer = setInterval(
    () => {
      records
        .renewCall(jobId, opId, leaseMs, tenant)
        .then((held) => {
          if (!held && !warned && !released) {
            warned = true;
            log.warn('this run was taken for dead mid-call (its lease ran out): the call is already counted as possibly billed');
          }
        })
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not renew the lease of the call in flight'));
    },
    Math.max(1, Math.floor(leaseMs / 2)),
  );
  timer.unref();
  return {
    release: () => {
      released = true;
      clearInterval(timer);
    },
  };
}
