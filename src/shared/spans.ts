import { ROOT_CONTEXT, context, isSpanContextValid, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { oneLine } from './errors.js';

/**
 * fluxq's spans (SPEC §9), made through the OpenTelemetry API only. Until a tracer
 * provider is registered (shared/tracing.ts starts one when an OTLP endpoint is set; a
 * library user may register their own) every call here is the API's no-op: no SDK is
 * loaded, no span is recorded, no context is written into a job.
 */

export const SPAN = {
  enqueue: 'fluxq.enqueue',
  job: 'fluxq.job',
  generate: 'flux.generate',
  s3Put: 's3.put',
  webhook: 'fluxq.webhook',
} as const;

/** Span attribute names (SPEC §9; `http.*`, `aws.s3.*` and `url.*` are OpenTelemetry's own). */
export const ATTR = {
  jobId: 'fluxq.job_id',
  batchId: 'fluxq.batch_id',
  tenant: 'fluxq.tenant',
  attempt: 'fluxq.attempt',
  outcome: 'fluxq.outcome',
  errorClass: 'fluxq.error_class',
  outputMp: 'fluxq.output_mp',
  httpStatus: 'http.response.status_code',
  s3Bucket: 'aws.s3.bucket',
  s3Key: 'aws.s3.key',
  webhookType: 'fluxq.webhook.type',
  serverAddress: 'server.address',
} as const;

export { ROOT_CONTEXT, SpanKind };

const tracer = trace.getTracer('fluxq');


/** Mark `span` failed with `err` (one line, at most 300 characters: never a payload). */
export function failSpan(span: Span, err: unknown): void {
  const message = oneLine(err instanceof Error ? err.message : String(err), 300);
  span.recordException({ name: err instanceof Error ? err.name : 'Error', message });
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** The parent context (default: the active one). */
  parent?: Context;
}

/**
 * Run `fn` in a new span, active while it runs; the span ends when `fn` settles, marked
 * failed when it throws (`fn` may also set the status itself, then the throw does not).
 */
export async function inSpan<T>(name: string, opts: SpanOptions, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    if (!statusSet.has(span)) failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

const statusSet = new WeakSet<Span>();

/** Say how a span ended (its status stays as set here when `inSpan`'s `fn` then throws). */
export function endStatus(span: Span, ok: boolean, err?: unknown): void {
  statusSet.add(span);
  if (ok) span.setStatus({ code: SpanStatusCode.OK });
  else if (err !== undefined) failSpan(span, err);
}

/** Start a span that the caller ends (for spans that cover several awaits of a batch). */
export function startSpan(name: string, opts: SpanOptions): { span: Span; context: Context } {
  const parent = opts.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * `ctx` as BullMQ carries it in a job (`opts.telemetry.metadata`, in bullmq-otel's
 * format: the propagator's headers as JSON); undefined when `ctx` holds no span
 * (tracing off), so jobs carry nothing extra then.
 */
export function contextMetadata(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpanContext(ctx);
  if (!sc || !isSpanContextValid(sc)) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return Object.keys(carrier).length > 0 ? JSON.stringify(carrier) : undefined;
}

/** The context `metadata` (from contextMetadata) names, on top of `base`; `base` when there is none or it is unreadable. */
export function contextFromMetadata(metadata: string | undefined, base: Context = context.active()): Context {
  if (!metadata) return base;
  try {
    const carrier: unknown = JSON.parse(metadata);
    return typeof carrier === 'object' && carrier !== null ? propagation.extract(base, carrier) : base;
  } catch {
    return base;
  }
}

/**
 * The parent of a span that starts a job's run: the active context when it holds a span
 * (BullMQ's own `process` span, when the worker has the BullMQ telemetry), else the
 * context the job carries.
 */
export function jobParentContext(metadata: string | undefined): Context {
  const active = context.active();
  return trace.getSpan(active) ? active : contextFromMetadata(metadata, active);
}

/** Run `fn` with `ctx` active. */
export function withContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}
