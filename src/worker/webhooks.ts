import { createHash } from 'node:crypto';
import { Queue, UnrecoverableError, Worker, type Job, type Telemetry } from 'bullmq';
import { Webhook } from 'standardwebhooks';
import { request, type Agent } from 'undici';
import { resolveAllowed, type AddressPolicy, type HostResolver } from '../shared/address-policy.js';
import { isRefusedAddress, pinnedAgent } from '../shared/pinned-agent.js';
import type { Config } from '../shared/config.js';
import { oneLine } from '../shared/errors.js';
import { EVENT, emitEvent } from '../shared/events.js';
import type { RedisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { redactUrl } from '../shared/redact-url.js';
import { ATTR, ROOT_CONTEXT, SPAN, SpanKind, contextFromMetadata, endStatus, inSpan, jobParentContext, withContext } from '../shared/spans.js';
import type { RedisClient } from '../shared/redis.js';
import { deadLetterWebhookEntry } from '../shared/redis-scripts/webhook-dead-letter.js';
import { parseOutboxEntry, type OutboxEntry } from './webhook-outbox-entry.js';

/**
 * Webhooks (SPEC §5): a job's final event to its `webhook_url`, a batch's
 * `batch.completed` to the batch webhook. The delivery request is written into an
 * outbox in the same script as its event (shared/redis-scripts/lua/), a relay moves
 * it into its own BullMQ queue, and a webhook worker POSTs `{ type, data }` signed per
 * Standard Webhooks, retrying with backoff on non-2xx and timeouts. When it gives up,
 * `webhook.failed` is emitted once. An outbox entry that is not a delivery is set aside
 * (`{prefix}:webhooks:dead`) without stopping the relay. None of it blocks or fails a
 * generation job.
 */
export interface WebhookDelivery {
  /** The events stream id of the event: `webhook-id` is `evt_{id}`, the same on every try. */
  id: string;
  url: string;
  secret: string;
  type: string;
  /** The event's `data`, exactly as written to the stream (a JSON string). */
  data: string;
  jobId?: string;
  batchId?: string;
  at: number;
  /** The trace context of the run that wrote the event (spans.ts): the delivery's tries join its trace. */
  trace?: string;
}

/** What the webhook queue carries as a job's data: the delivery without its trace context (that rides in BullMQ's telemetry field). */
export type WebhookJobData = Omit<WebhookDelivery, 'trace'>;

export const WEBHOOK_SCHEMES = ['http:', 'https:'] as const;

/** Standard Webhooks key: `whsec_…` is base64 bytes, anything else the secret's raw UTF-8 bytes. */
export function webhookSigner(secret: string): Webhook {
  return secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(new TextEncoder().encode(secret), { format: 'raw' });
}

export function webhookBody(d: Pick<WebhookDelivery, 'type' | 'data'>): string {
  return `{"type":${JSON.stringify(d.type)},"data":${d.data}}`;
}

class RefusedUrl extends Error {}

type UnusableEntry = Extract<OutboxEntry, { ok: false }>;

/** How many unusable outbox entries the dead-letter list keeps (the newest). */
export const DEAD_LETTER_MAX = 1000;

export interface WebhookServiceDeps {
  config: Config;
  redis: RedisClient;
  keys: RedisKeys;
  log: Logger;
  /** DNS for webhook hosts (default: the system's). */
  resolver?: HostResolver | undefined;
  /** BullMQ's telemetry for the webhook queue and worker (tracing on). */
  telemetry?: Telemetry | undefined;
}

/**
 * The webhook side of a worker process: the outbox relay and the delivery worker.
 */
export class WebhookService {
  readonly queue: Queue<WebhookJobData>;
  readonly worker: Worker<WebhookJobData>;
  readonly #d: WebhookServiceDeps;
  readonly #agent: Agent;
  readonly #policy: AddressPolicy;
  #timer: NodeJS.Timeout | undefined;
  #relaying: Promise<void> | undefined;
  #again = false;

  constructor(deps: WebhookServiceDeps) {
    this.#d = deps;
    const { config, redis, keys } = deps;
    this.#policy = { allowedHosts: config.webhooks.allowedHosts, ...(deps.resolver ? { resolver: deps.resolver } : {}) };
    this.#agent = pinnedAgent(this.#policy, { timeoutMs: config.webhooks.timeoutMs });
    const opts = { connection: redis, prefix: config.queue.prefix, ...(deps.telemetry ? { telemetry: deps.telemetry } : {}) };
    this.queue = new Queue<WebhookJobData>(keys.webhookQueueName, opts);
    this.queue.on('error', (err) => deps.log.warn({ err: err.message }, 'webhook queue error'));
    this.worker = new Worker<WebhookJobData>(keys.webhookQueueName, (job) => this.#deliverTraced(job), {
      ...opts,
      concurrency: 16,
      autorun: false,
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    });
    this.worker.on('error', (err) => deps.log.warn({ err: err.message }, 'webhook worker error'));
  }

  start(): void {
    void this.worker.run().catch((err: unknown) => this.#d.log.error({ err }, 'webhook worker stopped'));
    this.#timer = setInterval(() => this.kick(), 2000);
    this.#timer.unref();
    this.kick();
  }

  /** Move what the outbox holds into the webhook queue now. */
  kick(): void {
    if (this.#relaying) {
      this.#again = true;
      return;
    }
    this.#relaying = this.#relay()
      .catch((err: unknown) => this.#d.log.warn({ err: (err as Error).message }, 'webhook relay failed; retrying'))
      .finally(() => {
        this.#relaying = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  async #relay(): Promise<void> {
    const { redis, keys } = this.#d;
    // Entries a dead relay left half-moved: queue them again (the job id dedupes).
    const stale = await redis.lrange(keys.webhookRelaying, 0, 99);
    for (const raw of stale) {
      const entry = parseOutboxEntry(raw);
      if (!entry.ok) await this.#deadLetter(raw, entry);
      else if (Date.now() - entry.delivery.at > 30_000) await this.#enqueue(raw, entry.delivery);
    }
    for (let i = 0; i < 1000; i++) {
      const raw = await redis.lmove(keys.webhookOutbox, keys.webhookRelaying, 'LEFT', 'RIGHT');
      if (!raw) return;
      const entry = parseOutboxEntry(raw);
      if (entry.ok) await this.#enqueue(raw, entry.delivery);
      else await this.#deadLetter(raw, entry);
    }
  }

  /**
   * An entry that is not a delivery: report it (`webhook.failed` when it names its job or
   * batch and its URL, once), move it to the dead-letter list and go on with the rest.
   * Neither the event nor the log carries its secret or its payload.
   */
  async #deadLetter(raw: string, bad: UnusableEntry): Promise<void> {
    const { redis, keys, config, log } = this.#d;
    const target = bad.batchId ? { batchId: bad.batchId } : bad.jobId ? { jobId: bad.jobId } : undefined;
    const error = `webhook outbox entry unusable (${bad.problem}): not delivered`;
    if (target && bad.url) {
      const guard = keys.webhookFailedGuard(`dead-${createHash('sha256').update(raw).digest('hex').slice(0, 32)}`);
      if ((await redis.set(guard, '1', 'EX', config.idempotencyTtlS, 'NX')) === 'OK') {
        await emitEvent(redis, keys.events, config.events.maxLen, EVENT.webhookFailed, { ...target, url: redactUrl(bad.url), attempts: 0, error });
      }
    }
    const moved = await deadLetterWebhookEntry(redis, { relaying: keys.webhookRelaying, dead: keys.webhookDead }, { entry: raw, keep: DEAD_LETTER_MAX });
    if (moved) {
      log.warn({ ...target, ...(bad.url ? { url: redactUrl(bad.url) } : {}), problem: bad.problem, list: keys.webhookDead }, 'webhook outbox entry unusable: moved to the dead-letter list; relaying goes on');
    }
  }

  async #enqueue(raw: string, d: WebhookDelivery): Promise<void> {
    const { config, redis, keys } = this.#d;
    const { trace, ...data } = d;
    // In the job's trace (and no other: the relay may run inside some job's run): BullMQ's
    // own add span (telemetry on) is its child and the delivery job carries that context;
    // without BullMQ's telemetry, the job's own.
    await withContext(contextFromMetadata(trace, ROOT_CONTEXT), () =>
      this.queue.add(d.type, data, {
        jobId: `wh-${d.id}`,
        attempts: config.webhooks.attempts,
        backoff: { type: 'exponential', delay: config.webhooks.backoffMs, jitter: 0.5 },
        ...(trace ? { telemetry: { metadata: trace } } : {}),
      }),
    );
    await redis.lrem(keys.webhookRelaying, 1, raw);
  }

  /** One delivery try, in a `fluxq.webhook` span of the job's trace (SPEC §9). */
  #deliverTraced(job: Job<WebhookJobData>): Promise<void> {
    const d = job.data;
    const attributes = {
      ...(d.jobId ? { [ATTR.jobId]: d.jobId } : {}),
      ...(d.batchId ? { [ATTR.batchId]: d.batchId } : {}),
      [ATTR.attempt]: job.attemptsMade + 1,
      [ATTR.webhookType]: d.type,
      [ATTR.serverAddress]: URL.canParse(d.url) ? new URL(d.url).host : '',
    };
    return inSpan(SPAN.webhook, { kind: SpanKind.CLIENT, attributes, parent: jobParentContext(job.opts.telemetry?.metadata) }, async (span) => {
      try {
        await this.#deliver(job, (status) => span.setAttribute(ATTR.httpStatus, status));
        span.setAttribute(ATTR.outcome, 'delivered');
        endStatus(span, true);
      } catch (err) {
        span.setAttribute(ATTR.outcome, err instanceof UnrecoverableError ? 'failed' : 'retry');
        throw err;
      }
    });
  }

  /** POST the delivery; `answered` hears the receiver's HTTP status. */
  async #deliver(job: Job<WebhookJobData>, answered: (status: number) => void): Promise<void> {
    const d = job.data;
    const { config, log } = this.#d;
    const attempt = job.attemptsMade + 1;
    const last = attempt >= (job.opts.attempts ?? 1);
    try {
      const url = new URL(d.url);
      const resolved = await resolveAllowed(url, this.#policy, WEBHOOK_SCHEMES);
      if ('refused' in resolved) throw new RefusedUrl(resolved.refused);
      if ('unresolved' in resolved) throw new Error(resolved.unresolved); // DNS may answer on the next try
      const body = webhookBody(d);
      const msgId = `evt_${d.id}`;
      const now = new Date();
      const res = await request(url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'fluxq-webhooks/1',
          'webhook-id': msgId,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': webhookSigner(d.secret).sign(msgId, now, body),
        },
        body,
        signal: AbortSignal.timeout(config.webhooks.timeoutMs),
      });
      await res.body.dump();
      answered(res.statusCode);
      if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`receiver answered HTTP ${res.statusCode}`);
      log.debug({ webhookId: msgId, type: d.type, attempt }, 'webhook delivered');
    } catch (err) {
      const refused = err instanceof RefusedUrl || isRefusedAddress(err) !== undefined;
      const timeout = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError';
      const reason = refused
        ? `webhook_url refused: ${(err as Error).message}`
        : timeout
          ? `no answer within WEBHOOK_TIMEOUT_MS (${config.webhooks.timeoutMs} ms)`
          : oneLine((err as Error).message, 200);
      if (refused || last) {
        await this.#failed(job, reason, attempt);
        throw new UnrecoverableError(reason);
      }
      throw new Error(reason);
    }
  }

  /** `webhook.failed`, once per delivery even when a retry of this step runs twice. */
  async #failed(job: Job<WebhookJobData>, reason: string, attempts: number): Promise<void> {
    const { redis, keys, config, log } = this.#d;
    const d = job.data;
    const first = await redis.set(keys.webhookFailedGuard(d.id), '1', 'EX', config.idempotencyTtlS, 'NX');
    if (first !== 'OK') return;
    const target = d.batchId ? { batchId: d.batchId } : { jobId: d.jobId ?? '' };
    await emitEvent(redis, keys.events, config.events.maxLen, EVENT.webhookFailed, { ...target, url: redactUrl(d.url), attempts, error: reason });
    log.warn({ ...target, url: redactUrl(d.url), attempts, reason }, 'webhook gave up');
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#relaying?.catch(() => undefined);
    await this.worker.close();
    await this.queue.close();
    await this.#agent.close();
  }
}
