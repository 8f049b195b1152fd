import type { S3Client } from '@aws-sdk/client-s3';
import { RateLimitError, UnrecoverableError, type Job } from 'bullmq';
import type { Config } from '../shared/config.js';
import { estimateCostMicroUsd, type Prices } from '../shared/cost.js';
import { BudgetError, UpstreamError } from '../shared/errors.js';
import { EVENT, type StoredImage } from '../shared/events.js';
import { jobDataSchema, type JobData } from '../shared/job-data.js';
import type { JobRecords } from '../shared/job-record.js';
import { jobImageFolder } from '../shared/keys.js';
import type { JobResult } from '../shared/result.js';
import { toUpstreamBody, type UpstreamResponseMeta } from '../shared/upstream.js';
import { callLeaseMs, holdCallLease } from './call-lease.js';
import { findStoredImages, firstImageMayExist } from './checkpoint.js';
import type { DecodedResponse } from './decode.js';
import type { FluxClient } from './flux-client.js';
import { handleFailure, PoisonJobError, type Ledger, type OutcomeDeps } from './outcome.js';
import { resolveInputs, type ResolveInputsDeps } from './resolve-inputs.js';
import type { Spool } from './spool.js';
import { storeImages } from './upload.js';

export interface ProcessorDeps extends OutcomeDeps {
  config: Config;
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
  onStored?: (bytes: number) => void;
  onCompleted?: (result: JobResult, jobId: string) => void;
  /** Tests only: pause a run right before its call start, or right after it (see CallTestHooks). */
  testHooks?: CallTestHooks;
}

/**
 * Test-only seams around the call start, to hold a run there while a test cancels the
 * job or takes its lock away. Production never sets them.
 */
export interface CallTestHooks {
  /** After pick-up and inputs, before the call is counted as started. */
  beforeCallStart?: (jobId: string) => Promise<void>;
  /** After the call is counted as started (and leased), before the request is sent. */
  afterCallStart?: (jobId: string) => Promise<void>;
}

/** Parse the job's data; anything unusable is poison, failed with a clear reason. */
export function parseJobData(job: Job): JobData {
  const poison = (job as Job & { fluxqPoison?: string }).fluxqPoison;
  if (poison) throw new PoisonJobError(poison);
  const parsed = jobDataSchema.safeParse(job.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'data';
    throw new PoisonJobError(`job data is not a fluxq request (${where}: ${issue?.message ?? 'invalid'}); enqueue it with fluxq`);
  }
  return parsed.data as JobData;
}

function buildResult(
  data: JobData,
  model: string,
  images: StoredImage[],
  meta: UpstreamResponseMeta,
  ledger: Ledger,
  seed: number | undefined,
): JobResult {
  const result: JobResult = {
    images,
    input_mp: meta.input_mp,
    output_mp: meta.output_mp,
    total_pixels: meta.total_pixels,
    created: meta.created,
    model,
    attempts: ledger.attempts,
    possibly_billed: ledger.possiblyBilled,
  };
  const s = seed ?? data.params.seed;
  if (s !== undefined) result.seed = s;
  if (data.metadata) result.metadata = data.metadata;
  return result;
}

/**
 * The BullMQ processor, in SPEC order: replay a recorded outcome; complete from the
 * bucket when the images are already stored; re-upload spooled bytes; else (outside a
 * 429 window) resolve inputs, call the upstream once, decode strictly, upload, and
 * record + emit the outcome exactly once.
 */
export function createProcessor(deps: ProcessorDeps) {
  return async function processGeneration(job: Job<JobData>, token?: string, signal?: AbortSignal): Promise<JobResult> {
    const jobId = job.id ?? '';
    const log = deps.log.child({ jobId, attempt: job.attemptsMade + 1 });
    let ledger: Ledger = { attempts: 0, possiblyBilled: 0 };
    let data: JobData | undefined;
    try {
      data = parseJobData(job);
      const batchId = data.batch;
      const begun = await deps.records.beginRun(jobId, batchId);
      const record = begun.record;
      ledger = { attempts: record.attempts, possiblyBilled: record.possiblyBilled };
      if (begun.orphanedCalls > 0) log.warn({ orphanedCalls: begun.orphanedCalls }, 'an earlier run died mid-call: counted as possibly billed');
      log.trace({ gen: record.gen, callsEver: record.callsEver, attempts: record.attempts, batchId }, 'run started');
      if (record.state === 'completed' && record.result) return JSON.parse(record.result) as JobResult;
      if (record.state === 'failed' || record.state === 'cancelled') throw new UnrecoverableError(record.error ?? record.state);

      const model = data.model ?? deps.config.flux.model;
      const bucket = deps.config.s3.bucket ?? '';
      const folder = jobImageFolder({ keyPrefix: deps.config.s3.keyPrefix, jobId, batchId: data.batch, outputKeyPrefix: data.outputKeyPrefix });

      const complete = async (images: StoredImage[], meta: UpstreamResponseMeta, seed?: number): Promise<JobResult> => {
        const result = buildResult(data as JobData, model, images, meta, ledger, seed);
        const event = {
          jobId,
          ...(data?.batch ? { batchId: data.batch } : {}),
          images,
          attempts: ledger.attempts,
          possibly_billed: ledger.possiblyBilled,
          output_mp: meta.output_mp,
          input_mp: meta.input_mp,
          ...(data?.metadata ? { metadata: data.metadata } : {}),
        };
        const fin = await deps.records.finalize(jobId, {
          state: 'completed',
          batchId,
          result: JSON.stringify(result),
          event: { type: EVENT.jobCompleted, data: event },
          webhook: data?.webhook,
        });
        if (fin.recorded) deps.onFinalized?.(fin, batchId);
        else {
          // Already final: another run completed it (keep going), or it was cancelled or
          // failed meanwhile — then this run must not complete the BullMQ job.
          const now = await deps.records.get(jobId);
          if (now?.state && now.state !== 'completed') throw new UnrecoverableError(now.error ?? now.state);
        }
        deps.onCompleted?.(result, jobId);
        log.info({ images: images.map((i) => i.key), attempts: ledger.attempts, possibly_billed: ledger.possiblyBilled }, 'job completed');
        return result;
      };

      // Paid once: the bucket is the source of truth for "already generated". A job that
      // never started a call can only find images someone else stored: one HEAD at the key
      // its format predicts tells whether the full look is needed.
      const firstRun = record.callsEver === 0;
      const predicted = data.params.output_format === 'jpeg' ? 'jpg' : 'png';
      const mayExist = !firstRun || (await firstImageMayExist(deps.s3, bucket, folder, predicted, signal));
      const stored = mayExist ? await findStoredImages(deps.s3, bucket, folder, jobId, signal) : undefined;
      if (stored) {
        log.info('images already stored for this job: completing without an upstream call');
        return await complete(stored.images, stored.meta, stored.seed);
      }

      // Bytes an earlier attempt generated but could not upload (only after a call).
      let response: DecodedResponse | undefined = firstRun ? undefined : await deps.spool?.get(jobId, record.gen);
      const fromSpool = response !== undefined;
      if (response) log.info('uploading spooled images from an earlier attempt (no new upstream call)');
      if (!response) {
        const inputs = await resolveInputs(deps.inputs, data.inputs, signal);
        const body = toUpstreamBody(data.params, inputs);
        await deps.testHooks?.beforeCallStart?.(jobId);
        const leaseMs = callLeaseMs(deps.config.worker.lockDurationMs);
        const start = await deps.records.startCall(jobId, batchId, { limiterMax: deps.limiterMax, defaultMaxMp: deps.config.budget.maxMegapixelsPerBatch, leaseMs });
        // Cancelled (or finished by another run) since this run began: no call, and no
        // second final event — the record already has its final state.
        if (start.verdict === 'final') {
          log.info({ state: start.state }, 'job is already final: ending the run without an upstream call');
          if (start.state === 'completed') {
            const done = await deps.records.get(jobId);
            if (done?.result) return JSON.parse(done.result) as JobResult;
          }
          throw new UnrecoverableError(start.state || 'final');
        }
        // Fetched just before another worker's 429: no worker sends during the window.
        if (start.verdict === 'rate_limited') throw new RateLimitError();
        if (start.verdict === 'budget') throw new BudgetError(batchId ?? '', start.maxMp);
        const opId = start.opId;
        const lease = holdCallLease(deps.records, jobId, opId, leaseMs, log);
        log.debug({ model, fields: Object.keys(body), inputs: Object.keys(inputs).length }, 'calling upstream');
        try {
          await deps.testHooks?.afterCallStart?.(jobId);
          const answer = await deps.flux.generate(model, body, signal);
          response = answer.decoded;
          log.debug({ status: answer.status, latencyMs: Math.round(answer.latencyMs), images: response.images.length, output_mp: response.meta.output_mp }, 'upstream answered');
        } catch (err) {
          lease.release();
          if (err instanceof UpstreamError) {
            const spends = err.kind === 'permanent' || err.kind === 'transient' || err.kind === 'ambiguous';
            ledger = await deps.records.callSettled(jobId, batchId, opId, { spendsAttempt: spends, ambiguous: err.kind === 'ambiguous' });
          } else {
            // Cut off by this process (shutdown deadline) or an error of our own: the
            // upstream may have generated and billed. Counted now, as a run that died
            // mid-call is counted by the next one — the next run may begin before this
            // call's lease ends.
            ledger = await deps.records.callSettled(jobId, batchId, opId, { spendsAttempt: true, ambiguous: true }).catch(() => ledger);
          }
          throw err;
        }
        lease.release();
        const m = response.meta;
        ledger = await deps.records.callSettled(jobId, batchId, opId, {
          spendsAttempt: true,
          ambiguous: false,
          outputMp: m.output_mp,
          inputMp: m.input_mp,
          costMicroUsd: estimateCostMicroUsd(m.output_mp, m.input_mp, response.images.length, deps.prices),
        });
      }

      const generated = response;
      let spooled = false;
      const images = await storeImages(
        deps.s3,
        { bucket, folder, jobId, batchId: data.batch, seed: data.params.seed, meta: generated.meta, images: generated.images },
        {
          retryWindowMs: deps.uploadRetryWindowMs,
          signal,
          onFailure: async (err, round) => {
            if (!err.retryable) return void (await deps.spool?.remove(jobId, record.gen).catch(() => undefined)); // the job fails: nothing to keep
            log.warn({ err: err.message, round }, 'upload failed; keeping the generated bytes and retrying');
            if (!spooled && deps.spool) spooled = await deps.spool.put(jobId, record.gen, generated).catch(() => false);
          },
        },
      );
      deps.onStored?.(images.reduce((n, i) => n + i.bytes, 0));
      log.trace({ keys: images.map((i) => i.key), bytes: images.map((i) => i.bytes) }, 'images stored');
      if (deps.spool && (spooled || fromSpool)) await deps.spool.remove(jobId, record.gen).catch(() => undefined);
      return await complete(images, generated.meta);
    } catch (err) {
      if (err instanceof UnrecoverableError) throw err;
      if (err instanceof RateLimitError) throw err;
      return handleFailure(
        deps,
        { job, token, signal, ledger, batchId: data?.batch ?? undefined, metadata: data?.metadata, webhook: data?.webhook, log },
        err,
      );
    }
  };
}
