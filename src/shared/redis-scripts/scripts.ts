/**
 * Every Redis script fluxq runs, by name: importing this module reads all of them (a
 * build without its `.lua` files fails here, at once). Each lives in `lua/{name}.lua`
 * with a typed wrapper in the module of its concern.
 */
import { ADD_BATCH_JOBS, EMIT_BATCH_COMPLETED } from './batch-record.js';
import { BEGIN_RUN, RELEASE_CALL, RENEW_CALL, SETTLE_CALL, START_CALL } from './call-ledger.js';
import { ADAPT_CONCURRENCY, RESTORE_CONCURRENCY } from './concurrency-limit.js';
import { FAIR_DISPATCH } from './fair-dispatch.js';
import { CANCEL_JOB, EXPIRE_JOB, FINALIZE_JOB } from './finalisation.js';
import { REOPEN_JOB } from './id-record.js';
import type { RedisScript } from './load-script.js';
import { DEAD_LETTER_WEBHOOK_ENTRY } from './webhook-dead-letter.js';

export const ALL_SCRIPTS: readonly RedisScript<string>[] = [
  BEGIN_RUN,
  START_CALL,
  RENEW_CALL,
  SETTLE_CALL,
  RELEASE_CALL,
  FINALIZE_JOB,
  CANCEL_JOB,
  EXPIRE_JOB,
  REOPEN_JOB,
  ADD_BATCH_JOBS,
  EMIT_BATCH_COMPLETED,
  ADAPT_CONCURRENCY,
  RESTORE_CONCURRENCY,
  DEAD_LETTER_WEBHOOK_ENTRY,
  FAIR_DISPATCH,
];
