import type { S3Client } from '@aws-sdk/client-s3';
import { DelayedError, RateLimitError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { poisonReason } from '../shared/bullmq-internals.js';
import { estimateCostMicroUsd, type Prices } from '../shared/cost.js';
import { BudgetError, TenantLimitedError, UpstreamError } from '../shared/errors.js';
import { tenantLimits, type FairShare } from '../shared/fair-share.js';
import type { TenantLimits } from '../shared/redis-scripts/call-ledger.js';
import { EVENT, type StoredImage } from '../shared/events.js';
import { jobDataSchema, jobTenant, type JobData } from '../shared/job-data.js';
import type { JobRecord, JobRecords } from '../shared/job-record.js';
import { jobImageFolder } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import type { JobResult } from '../shared/result.js';
import { ATTR, SPAN, SpanKind, endStatus, inSpan, jobParentContext } from '../shared/spans.js';
import { toUpstreamBody, type UpstreamBody } from '../shared/upstream.js';
import { callLeaseMs, holdCallLease } from './call-lease.js';
import { findStoredImages, firstImageMayExist, type StoredResult } from './checkpoint.js';
import type { DecodedResponse } from './decode.js';
import type { FluxClient } from './flux-client.js';
import { AlreadyFinalError, recordExpiry } from './final-failure.js';
import { handleFailure, PoisonJobError, type Ledger, type OutcomeDeps } from './outcome.js';
import { resolveInputs, type ResolveInputsDeps } from './resolve-inputs.js';
import type { Spool } from './spool.js';
import { storeImages } from './upload.js';

export interface ProcessorDeps extends OutcomeDeps {
  /** Bytes stored per upload, for the metrics. */
  onStored?: (bytes: number) => void;
  onCompleted?: (result: JobResult, jobId: string) => void;
  s3: S3Client;
  flux: FluxClient;
  records: JobRecords;
  spool: Spool | undefined;
  inputs: ResolveInputsDeps;
  /** The limiter max in force, to tell a 429 back-off window from an ordinary one. */
  limiterMax: number;
  /** How long an upload keeps retrying while S3 is down, holding the bytes. */
  uploadRetryWindowMs: number;
  prices: Prices;
  /** A job's first upstream call ever is being sent: `enqueuedAtMs` is when it was enqueued (queue wait histogram). */
  onFirstCall?: (enqueuedAtMs: number) => void;
  /** Tests only: pause a run right before its call start, or right after it (see CallTestHooks). */
  testHooks?: CallTestHooks;
  /** Fair share's dispatcher: kicked when a run begins (its job left the wait list) and when an unsent call is released; the worker kicks it when a job ends. */
  fair?: Pick<FairShare, 'kick'>;
}

/** How long a job waits (delayed) when its tenant is at TENANT_MAX_CONCURRENCY at call start. */
export const TENANT_LIMITED_DELAY_MS = 250;

/**
 * Test-only seams around the call start, to hold a run there while a test cancels the
 * job or takes its lock away. Production never sets them.
 */
export interface CallTestHooks {
  /**
   * After pick-up, before each step that may count the call as started: the run's begin
   * (which starts a first run's call) and a later call start.
   */
  beforeCallStart?: (jobId: string) => Promise<void>;
  /** After the call is counted as started (and leased), before the request is sent. */
  afterCallStart?: (jobId: string) => Promise<void>;
}

/** Parse the job's data; anything unusable is poison, failed with a clear reason. */
export function parseJobData(job: Job): JobData {
  const poison = poisonReason(job);
  if (poison) throw new PoisonJobError(poison);
  const parsed = jobDataSchema.safeParse(job.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'data';
    throw new PoisonJobError(`job data is not a fluxq request (${where}: ${issue?.message ?? 'invalid'}); enqueue it with fluxq`);
  }
  return parsed.data as JobData;
}

/** A promise's outcome, kept so nobody has to await it (no unhandled rejection). */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
async function unwrap<T>(p: Promise<Settled<T>>): Promise<T> {
  const s = await p;
  if (!s.ok) throw s.error;
  return s.value;
}

/** What a run knows once it began: fixed for the rest of the run. */
interface Run {
  jobId: string;
  data: JobData;
  batchId: string | undefined;
  tenant: string;
  record: JobRecord;
  model: string;
  bucket: string;
  folder: string;
  log: Logger;
  signal: AbortSignal | undefined;
  /** The job's tenant and its caps, checked at each call start. */
  limits: TenantLimits;
  /** The HEAD at the first image's predicted key, sent with the run's begin (see completeFromBucket). */
  firstImageHead: Promise<Settled<boolean>>;
  /** BullMQ's job timestamp: when the job was enqueued. */
  enqueuedAtMs: number;
}

/** A call counted as started under `opId`, its lease held until `lease.release()`. */
interface StartedCall {
  opId: string;
  leaseMs: number;
  lease: { release(): void };
}

const NO_LEDGER: Ledger = { attempts: 0, possiblyBilled: 0 };

function ledgerOf(record: JobRecord): Ledger {
  return { attempts: record.attempts, possiblyBilled: record.possiblyBilled };
}

function startedCall(deps: ProcessorDeps, jobId: string, tenant: string, opId: string, leaseMs: number, log: Logger): StartedCall {
  return { opId, leaseMs, lease: holdCallLease(deps.records, jobId, tenant, opId, leaseMs, log) };
}

function callStartOptions(deps: ProcessorDeps) {
  return { limiterMax: deps.limiterMax, defaultMaxMp: deps.config.budget.maxMegapixelsPerBatch, leaseMs: callLeaseMs(deps.config.worker.lockDurationMs) };
}

/**
 * Open the run in the job's record (counting calls an earlier run left in flight). On a
 * job's first run (no call ever started: the common case) the same round trip starts
 * its call — unless the job is final, inside a 429 window or over its batch's budget —
 * while the HEAD that tells whether the bucket may already hold its images is in flight.
 */
async function beginRun(
  deps: ProcessorDeps,
  jobId: string,
  data: JobData,
  log: Logger,
  signal: AbortSignal | undefined,
  enqueuedAtMs: number,
): Promise<{ run: Run; call: StartedCall | undefined }> {
  const batchId = data.batch;
  const bucket = deps.config.s3.bucket ?? '';
  const folder = jobImageFolder({ keyPrefix: deps.config.s3.keyPrefix, jobId, batchId, outputKeyPrefix: data.outputKeyPrefix });
  await deps.testHooks?.beforeCallStart?.(jobId);
  const predicted = data.params.output_format === 'jpeg' ? 'jpg' : 'png';
  const firstImageHead = settle(firstImageMayExist(deps.s3, bucket, folder, predicted, signal));
  const opts = callStartOptions(deps);
  const limits = tenantLimits(deps.config, jobTenant(data));
  const { record, orphanedCalls, start } = await deps.records.beginRun(jobId, batchId, opts, limits);
  deps.fair?.kick();
  if (orphanedCalls > 0) log.warn({ orphanedCalls }, 'an earlier run died mid-call: counted as possibly billed');
  log.trace({ gen: record.gen, callsEver: record.callsEver, attempts: record.attempts, batchId, start: start?.verdict }, 'run started');
  const run: Run = { jobId, data, batchId, tenant: jobTenant(data), record, model: data.model ?? deps.config.flux.model, bucket, folder, log, signal, limits, firstImageHead, enqueuedAtMs };
  if (start?.verdict === 'expired') await expireRun(deps, run, start.deadline);
  const call = start?.verdict === 'ok' ? startedCall(deps, jobId, limits.tenant, start.opId, opts.leaseMs, log) : undefined;
  return { run, call };
}

/**
 * The call start found the job's deadline passed before any call of this generation
 * started: it ends `expired`, with no call (SPEC §8). The sweeper may have got there
 * first: then the record already says so and this run just ends.
 */
async function expireRun(deps: ProcessorDeps, run: Run, deadline: number): Promise<never> {
  const reply = await recordExpiry(
    deps,
    { jobId: run.jobId, batchId: run.batchId, tenant: run.tenant, deadline, ledger: ledgerOf(run.record), metadata: run.data.metadata, webhook: run.data.webhook, enqueuedAtMs: run.enqueuedAtMs },
    run.log,
  );
  run.log.info({ outcome: reply.outcome }, 'deadline passed before the first upstream call: ending the run without one');
  throw new AlreadyFinalError(reply.outcome === 'started' ? 'a call started meanwhile' : 'expired');
}

/** The record already has this generation's outcome: its result, or its failure (no second event). */
function replayRecordedOutcome(record: JobRecord): JobResult | undefined {
  if (record.state === 'completed' && record.result) return JSON.parse(record.result) as JobResult;
  if (record.state === 'failed' || record.state === 'cancelled' || record.state === 'expired') throw new AlreadyFinalError(record.error ?? record.state);
  return undefined;
}

/**
 * Paid once: the bucket is the source of truth for "already generated". A job that never
 * started a call can only find images someone else stored: one HEAD at the key its format
 * predicts tells whether the full look is needed.
 */
async function completeFromBucket(deps: ProcessorDeps, run: Run): Promise<StoredResult | undefined> {
  const firstRun = run.record.callsEver === 0;
  const mayExist = !firstRun || (await unwrap(run.firstImageHead));
  const stored = mayExist ? await findStoredImages(deps.s3, run.bucket, run.folder, run.jobId, run.signal) : undefined;
  if (stored) run.log.info('images already stored for this job: completing without an upstream call');
  return stored;
}

/** Bytes an earlier attempt generated but could not upload (only after a call). */
async function takeSpooled(deps: ProcessorDeps, run: Run): Promise<DecodedResponse | undefined> {
  if (run.record.callsEver === 0) return undefined;
  const spooled = await deps.spool?.get(run.jobId, run.record.gen);
  if (spooled) run.log.info('uploading spooled images from an earlier attempt (no new upstream call)');
  return spooled;
}

interface UpstreamRequest {
  body: UpstreamBody;
  inputCount: number;
}

async function buildRequest(deps: ProcessorDeps, run: Run): Promise<UpstreamRequest> {
  const inputs = await resolveInputs(deps.inputs, run.data.inputs, run.signal);
  return { body: toUpstreamBody(run.data.params, inputs), inputCount: Object.keys(inputs).length };
}

type CallStart = ({ started: true } & StartedCall) | { started: false; result: JobResult };

/**
 * Count the call as started, or end the run without one: the job became final meanwhile
 * (cancelled, or finished by another run), the fleet is inside a 429 window, or the
 * batch's budget is spent.
 */
async function startCall(deps: ProcessorDeps, run: Run): Promise<CallStart> {
  await deps.testHooks?.beforeCallStart?.(run.jobId);
  const opts = callStartOptions(deps);
  const start = await deps.records.startCall(run.jobId, run.batchId, opts, run.limits);
  if (start.verdict === 'final') {
    // No call, and no second final event: the record already has its final state.
    run.log.info({ state: start.state }, 'job is already final: ending the run without an upstream call');
    if (start.state === 'completed') {
      const done = await deps.records.get(run.jobId);
      if (done?.result) return { started: false, result: JSON.parse(done.result) as JobResult };
    }
    throw new AlreadyFinalError(start.state || 'final');
  }
  // Fetched just before another worker's 429: no worker sends during the window.
  if (start.verdict === 'rate_limited') throw new RateLimitError();
  if (start.verdict === 'budget') throw new BudgetError(run.batchId ?? '', start.maxMp);
  if (start.verdict === 'expired') return expireRun(deps, run, start.deadline);
  if (start.verdict === 'tenant_budget') throw BudgetError.ofTenant(start.tenant, start.maxMp);
  if (start.verdict === 'tenant_limited') throw new TenantLimitedError(start.tenant, run.jobId);
  return { started: true, ...startedCall(deps, run.jobId, run.limits.tenant, start.opId, opts.leaseMs, run.log) };
}

type CallOutcome = { ok: true; response: DecodedResponse; ledger: Ledger } | { ok: false; error: unknown; ledger: Ledger };

/** Send the started call (its lease held meanwhile) and settle it in the ledger, whatever happened. */
async function callUpstream(deps: ProcessorDeps, run: Run, request: UpstreamRequest, call: StartedCall, before: Ledger, firstEver: boolean): Promise<CallOutcome> {
  const { jobId, batchId, log } = run;
  const { lease } = call;
  log.debug({ model: run.model, fields: Object.keys(request.body), inputs: request.inputCount }, 'calling upstream');
  let response: DecodedResponse;
  try {
    await deps.testHooks?.afterCallStart?.(jobId);
    if (firstEver) deps.onFirstCall?.(run.enqueuedAtMs);
    const answer = await deps.flux.generate(run.model, request.body, run.signal);
    response = answer.decoded;
    log.debug({ status: answer.status, latencyMs: Math.round(answer.latencyMs), images: response.images.length, output_mp: response.meta.output_mp }, 'upstream answered');
  } catch (error) {
    lease.release();
    if (error instanceof UpstreamError) {
      const spends = error.kind === 'permanent' || error.kind === 'transient' || error.kind === 'ambiguous';
      return { ok: false, error, ledger: await deps.records.callSettled(jobId, batchId, call.opId, { spendsAttempt: spends, ambiguous: error.kind === 'ambiguous' }, run.limits.tenant) };
    }
    // Cut off by this process (shutdown deadline) or an error of our own: the upstream
    // may have generated and billed. Counted now, as a run that died mid-call is counted
    // by the next one — the next run may begin before this call's lease ends.
    const ledger = await deps.records.callSettled(jobId, batchId, call.opId, { spendsAttempt: true, ambiguous: true }, run.limits.tenant).catch(() => before);
    return { ok: false, error, ledger };
  }
  lease.release();
  const m = response.meta;
  const ledger = await deps.records.callSettled(jobId, batchId, call.opId, {
    spendsAttempt: true,
    ambiguous: false,
    outputMp: m.output_mp,
    inputMp: m.input_mp,
    costMicroUsd: estimateCostMicroUsd(m.output_mp, m.input_mp, response.images.length, deps.prices),
  }, run.limits.tenant);
  return { ok: true, response, ledger };
}

/**
 * A first run's call, started with the run: sent once the HEAD (in flight since the run
 * began) says the bucket has no image of the job and the inputs are resolved (both at
 * once). Otherwise released — never sent, so no attempt and nothing possibly billed:
 * when the images may be stored (undefined: the run goes on to the full look, and
 * starts a call again if it finds none), or when anything ends the run before the
 * request goes out (the HEAD's error comes first, as in completeFromBucket).
 */
async function sendStartedCall(deps: ProcessorDeps, run: Run, call: StartedCall, before: Ledger): Promise<CallOutcome | undefined> {
  let sent = false;
  try {
    const [head, built] = await Promise.allSettled([unwrap(run.firstImageHead), buildRequest(deps, run)]);
    if (head.status === 'rejected') throw head.reason;
    if (head.value) return undefined;
    if (built.status === 'rejected') throw built.reason;
    sent = true;
    // Started by the run's begin: only when no call was ever started for the id.
    return await callUpstream(deps, run, built.value, call, before, true);
  } finally {
    if (!sent) await releaseCall(deps, run, call);
  }
}

/** Undo a call start whose request was never sent (a failure is logged: the lease then runs out). */
async function releaseCall(deps: ProcessorDeps, run: Run, call: StartedCall): Promise<void> {
  call.lease.release();
  try {
    const released = await deps.records.releaseCall(run.jobId, call.opId, run.limits.tenant);
    deps.fair?.kick();
    run.log.debug({ released }, 'call started with the run released unsent');
  } catch (err) {
    run.log.warn({ err: (err as Error).message }, 'could not release the unsent call: once its lease ends the next run counts it possibly billed');
  }
}

/** Where a run's images come from (or the run's end without them). */
type Source = { stored: StoredResult } | { spooled: DecodedResponse } | { called: CallOutcome } | { result: JobResult };

/**
 * The call the run began with; else, as on a later run: the bucket, the spool, or a new
 * call (the final-state check and the gate again in its start).
 */
async function findOrGenerate(deps: ProcessorDeps, run: Run, call: StartedCall | undefined, before: Ledger): Promise<Source> {
  const first = call ? await sendStartedCall(deps, run, call, before) : undefined;
  if (first) return { called: first };
  const stored = await completeFromBucket(deps, run);
  if (stored) return { stored };
  const spooled = await takeSpooled(deps, run);
  if (spooled) return { spooled };
  const request = await buildRequest(deps, run);
  const start = await startCall(deps, run);
  if (!start.started) return { result: start.result };
  return { called: await callUpstream(deps, run, request, start, before, run.record.callsEver === 0) };
}

/**
 * Upload generated images to the job's keys. While S3 is down the bytes are spooled once
 * (a retry uploads them without a new call); the spool is emptied once they are stored,
 * or when the job fails for good.
 */
async function storeGenerated(deps: ProcessorDeps, run: Run, generated: DecodedResponse, fromSpool: boolean): Promise<StoredImage[]> {
  const { jobId, record, log, data } = run;
  const spool = deps.spool;
  const drop = () => spool?.remove(jobId, record.gen).catch(() => undefined);
  let kept = false;
  const images = await storeImages(
    deps.s3,
    { bucket: run.bucket, folder: run.folder, jobId, batchId: data.batch, seed: data.params.seed, meta: generated.meta, images: generated.images },
    {
      retryWindowMs: deps.uploadRetryWindowMs,
      signal: run.signal,
      onFailure: async (err, round) => {
        if (!err.retryable) return void (await drop()); // the job fails: nothing to keep
        log.warn({ err: err.message, round }, 'upload failed; keeping the generated bytes and retrying');
        if (!kept && spool) kept = await spool.put(jobId, record.gen, generated).catch(() => false);
      },
    },
  );
  deps.onStored?.(images.reduce((n, i) => n + i.bytes, 0));
  log.trace({ keys: images.map((i) => i.key), bytes: images.map((i) => i.bytes) }, 'images stored');
  if (kept || fromSpool) await drop();
  return images;
}

function buildResult(run: Run, output: StoredResult, ledger: Ledger): JobResult {
  const { data } = run;
  const { meta } = output;
  const result: JobResult = {
    images: output.images,
    input_mp: meta.input_mp,
    output_mp: meta.output_mp,
    total_pixels: meta.total_pixels,
    created: meta.created,
    model: run.model,
    attempts: ledger.attempts,
    possibly_billed: ledger.possiblyBilled,
  };
  const s = output.seed ?? data.params.seed;
  if (s !== undefined) result.seed = s;
  if (data.metadata) result.metadata = data.metadata;
  result.tenant = run.tenant;
  return result;
}

/** Record the job as completed and emit job.completed, exactly once. */
async function complete(deps: ProcessorDeps, run: Run, output: StoredResult, ledger: Ledger): Promise<JobResult> {
  const { jobId, batchId, data } = run;
  const result = buildResult(run, output, ledger);
  const event = {
    jobId,
    ...(batchId ? { batchId } : {}),
    tenant: run.tenant,
    images: output.images,
    attempts: ledger.attempts,
    possibly_billed: ledger.possiblyBilled,
    output_mp: output.meta.output_mp,
    input_mp: output.meta.input_mp,
    ...(data.metadata ? { metadata: data.metadata } : {}),
  };
  const fin = await deps.records.finalize(jobId, {
    state: 'completed',
    batchId,
    tenant: run.tenant,
    result: JSON.stringify(result),
    event: { type: EVENT.jobCompleted, data: event },
    webhook: data.webhook,
  });
  if (fin.recorded) {
    deps.onFinalized?.(fin, batchId);
    deps.onJobFinal?.('completed', run.enqueuedAtMs);
  } else {
    // Already final: another run completed it (keep going), or it was cancelled or
    // failed meanwhile — then this run must not complete the BullMQ job.
    const now = await deps.records.get(jobId);
    if (now?.state && now.state !== 'completed') throw new AlreadyFinalError(now.error ?? now.state);
  }
  deps.onCompleted?.(result, jobId);
  run.log.info({ images: output.images.map((i) => i.key), attempts: ledger.attempts, possibly_billed: ledger.possiblyBilled }, 'job completed');
  return result;
}

/**
 * The BullMQ processor, in SPEC order: replay a recorded outcome; complete from the
 * bucket when the images are already stored; re-upload spooled bytes; else (outside a
 * 429 window) resolve inputs, call the upstream once, decode strictly, upload, and
 * record + emit the outcome exactly once. Any other end goes through handleFailure.
 * On a job's first run the run's begin also starts the call (one Redis round trip) while
 * the bucket is asked, and the call is released unsent when the bucket may have the images.
 */
export function createProcessor(deps: ProcessorDeps) {
  const run = runGeneration(deps);
  return function processGeneration(job: Job<JobData>, token?: string, signal?: AbortSignal): Promise<JobResult> {
    return inSpan(SPAN.job, { kind: SpanKind.CONSUMER, attributes: jobSpanAttributes(job), parent: jobParentContext(job.opts.telemetry?.metadata) }, async (span) => {
      try {
        const result = await run(job, token, signal);
        span.setAttribute(ATTR.outcome, 'completed');
        endStatus(span, true);
        return result;
      } catch (err) {
        const outcome = runOutcome(err);
        span.setAttribute(ATTR.outcome, outcome);
        // Sent back without spending an attempt: not a failure of the run.
        if (outcome === 'rate_limited' || outcome === 'requeued' || outcome === 'delayed') endStatus(span, false);
        throw err;
      }
    });
  };
}

/** `fluxq.job`'s attributes known at pick-up (SPEC §9). */
function jobSpanAttributes(job: Job<JobData>) {
  const data: unknown = job.data;
  const batch = typeof data === 'object' && data !== null ? (data as { batch?: unknown }).batch : undefined;
  return {
    [ATTR.jobId]: job.id ?? '',
    ...(typeof batch === 'string' ? { [ATTR.batchId]: batch } : {}),
    [ATTR.tenant]: jobTenant(data),
    [ATTR.attempt]: job.attemptsMade + 1,
  };
}

/** How a run that threw ended, as `fluxq.outcome` says it (outcome.ts decides which error is which). */
function runOutcome(err: unknown): string {
  if (err instanceof RateLimitError) return 'rate_limited';
  if (err instanceof WaitingError) return 'requeued';
  if (err instanceof DelayedError) return 'delayed';
  if (err instanceof UnrecoverableError) return 'failed';
  return 'retry';
}

function runGeneration(deps: ProcessorDeps) {
  return async function processGeneration(job: Job<JobData>, token?: string, signal?: AbortSignal): Promise<JobResult> {
    const jobId = job.id ?? '';
    const log = deps.log.child({ jobId, attempt: job.attemptsMade + 1 });
    let data: JobData | undefined;
    let ledger = NO_LEDGER;
    try {
      data = parseJobData(job);
      const { run, call } = await beginRun(deps, jobId, data, log, signal, job.timestamp);
      ledger = ledgerOf(run.record);
      const recorded = replayRecordedOutcome(run.record); // a final record started no call
      if (recorded) return recorded;
      const source = await findOrGenerate(deps, run, call, ledger);
      if ('result' in source) return source.result;
      if ('stored' in source) return await complete(deps, run, source.stored, ledger);
      let generated: DecodedResponse;
      if ('called' in source) {
        ledger = source.called.ledger;
        if (!source.called.ok) throw source.called.error;
        generated = source.called.response;
      } else generated = source.spooled;
      const images = await storeGenerated(deps, run, generated, 'spooled' in source);
      return await complete(deps, run, { images, meta: generated.meta }, ledger);
    } catch (err) {
      if (err instanceof UnrecoverableError || err instanceof RateLimitError || err instanceof DelayedError) throw err;
      if (err instanceof TenantLimitedError && token) {
        // The tenant's calls in flight are at TENANT_MAX_CONCURRENCY: wait without an attempt.
        log.debug({ tenant: err.tenant }, 'tenant at its concurrency cap: the job waits');
        await job.moveToDelayed(Date.now() + TENANT_LIMITED_DELAY_MS + Math.floor(Math.random() * TENANT_LIMITED_DELAY_MS), token);
        throw new DelayedError();
      }
      return handleFailure(deps, { job, token, signal, ledger, batchId: data?.batch, metadata: data?.metadata, webhook: data?.webhook, log }, err);
    }
  };
}
