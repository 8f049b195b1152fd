import assert from 'node:assert/strict';
import { test } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { startHarness, waitFor, type Harness } from '../helpers/harness.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * SPEC §9 Tracing, end to end through real processes: `fluxq enqueue` / `fluxq api` and a
 * `fluxq worker` export over OTLP (both protocols) to an in-process receiver; one job
 * retried once (an injected 500) and then completed with a webhook is one trace, from
 * `fluxq.enqueue` to its last `fluxq.webhook` try.
 */
const hookEnv = { WEBHOOK_ALLOWED_HOSTS: 'localhost', WEBHOOK_BACKOFF_MS: '100', WEBHOOK_TIMEOUT_MS: '5000', WEBHOOK_ATTEMPTS: '3' };
const SPAN_KIND = { producer: 4, consumer: 5, client: 3 } as const;
const STATUS = { unset: 0, ok: 1, error: 2 } as const;

function otelEnv(rx: OtlpReceiver, protocol: 'http/protobuf' | 'http/json'): Record<string, string> {
  return { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_EXPORTER_OTLP_PROTOCOL: protocol };
}

const named = (spans: ReceivedSpan[], name: string) => spans.filter((s) => s.name === name);
const byAttempt = (a: ReceivedSpan, b: ReceivedSpan) => Number(a.attributes['fluxq.attempt']) - Number(b.attributes['fluxq.attempt']);

/** The job's trace as received: its `fluxq.enqueue` span and every span with its trace id. */
function traceOf(rx: OtlpReceiver, jobId: string): { root: ReceivedSpan; spans: ReceivedSpan[] } {
  const enqueues = named(rx.spans, 'fluxq.enqueue').filter((s) => s.attributes['fluxq.job_id'] === jobId);
  assert.equal(enqueues.length, 1, `one fluxq.enqueue span for ${jobId}`);
  const root = enqueues[0] as ReceivedSpan;
  return { root, spans: rx.spans.filter((s) => s.traceId === root.traceId) };
}

/** Every span of the trace hangs off another span of it, up to `root`: one connected trace. */
function assertConnected(spans: ReceivedSpan[], root: ReceivedSpan): void {
  const ids = new Set(spans.map((s) => s.spanId));
  for (const s of spans) {
    if (s === root) continue;
    assert.ok(ids.has(s.parentSpanId), `${s.name} (${s.service}) has its parent ${s.parentSpanId || '(none)'} in the trace`);
  }
}

async function stop(proc: { kill(sig?: NodeJS.Signals): void; exited: Promise<number | string> }): Promise<void> {
  proc.kill('SIGTERM');
  assert.equal(await proc.exited, 0, 'a clean exit (the tracing flush is part of it)');
}

test('http/protobuf: fluxq enqueue → a run failed by a 500 → a run that completes → two webhook tries: one trace', { timeout: 120_000 }, async (t) => {
  const rx = await startOtlpReceiver();
  t.after(() => rx.close());
  const hooks = await startWebhookReceiver();
  t.after(() => hooks.close());
  hooks.answer = (_path, nth) => (nth === 0 ? 500 : 200);
  const h = await startHarness(t, { env: hookEnv });
  h.fake.inject({ fault: { type: 'status', status: 500, errorType: 'internal_error', message: 'injected 500' }, times: 1 });
  const otel = otelEnv(rx, 'http/protobuf');
  const worker = await h.spawnWorker(otel);

  const request = { id: 'traced-1', prompt: 'a lighthouse at dusk', width: 256, height: 256, webhook_url: hooks.url('/hook'), webhook_secret: 'trace-secret' };
  const cli = await h.cli(['enqueue', '-'], { env: otel, input: `${JSON.stringify(request)}\n` });
  assert.equal(cli.code, 0, cli.stderr);
  await waitFor(() => hooks.deliveries.length >= 2, { timeoutMs: 60_000, what: 'the webhook answered 500, then delivered' });
  await stop(worker);
  await waitFor(() => named(rx.spans, 'fluxq.webhook').length >= 2, { timeoutMs: 20_000, what: 'the worker\'s spans, flushed at shutdown' });
  assert.deepEqual(rx.errors, []);

  const { root, spans } = traceOf(rx, 'traced-1');
  assert.equal(root.service, 'fluxq-cli');
  assert.equal(root.protocol, 'http/protobuf');
  assert.equal(root.kind, SPAN_KIND.producer);
  assert.equal(root.parentSpanId, '', 'the CLI\'s enqueue starts the trace');
  const batchId = root.attributes['fluxq.batch_id'];
  assert.match(String(batchId), /.+/, 'the CLI put the job in a batch');
  assert.equal(root.attributes['fluxq.tenant'], 'default');
  assertConnected(spans, root);
  assert.deepEqual([...new Set(spans.map((s) => s.service))].sort(), ['fluxq-cli', 'fluxq-worker']);

  // Two runs of the job, attempts 1 and 2: the first retried, the second completed.
  const runs = named(spans, 'fluxq.job').sort(byAttempt);
  assert.equal(runs.length, 2, 'two fluxq.job spans');
  for (const run of runs) {
    assert.equal(run.service, 'fluxq-worker');
    assert.equal(run.kind, SPAN_KIND.consumer);
    assert.equal(run.attributes['fluxq.job_id'], 'traced-1');
    assert.equal(run.attributes['fluxq.batch_id'], batchId);
    assert.equal(run.attributes['fluxq.tenant'], 'default');
  }
  assert.deepEqual(runs.map((r) => [r.attributes['fluxq.attempt'], r.attributes['fluxq.outcome']]), [[1, 'retry'], [2, 'completed']]);
  assert.equal(runs[0]?.statusCode, STATUS.error);
  assert.equal(runs[1]?.statusCode, STATUS.ok);

  // One upstream call per run: a 500 (transient, an error span) under run 1, a 200 under run 2.
  const calls = named(spans, 'flux.generate');
  assert.equal(calls.length, 2, 'two flux.generate spans');
  const callOf = (run: ReceivedSpan | undefined) => calls.find((c) => c.parentSpanId === run?.spanId);
  const failedCall = callOf(runs[0]);
  const okCall = callOf(runs[1]);
  assert.ok(failedCall && okCall, 'each flux.generate is a child of its run');
  assert.equal(failedCall.attributes['http.response.status_code'], 500);
  assert.equal(failedCall.attributes['fluxq.error_class'], 'transient');
  assert.equal(failedCall.statusCode, STATUS.error);
  assert.match(failedCall.statusMessage, /transient: HTTP 500/);
  assert.equal(failedCall.kind, SPAN_KIND.client);
  assert.equal(okCall.attributes['http.response.status_code'], 200);
  assert.equal(okCall.attributes['fluxq.error_class'], undefined);
  assert.ok(Number(okCall.attributes['fluxq.output_mp']) > 0, 'fluxq.output_mp on the answered call');
  assert.notEqual(okCall.statusCode, STATUS.error);

  // One s3.put per image, under the run that stored it.
  const puts = named(spans, 's3.put');
  assert.equal(puts.length, 1, 'one image, one s3.put');
  assert.equal(puts[0]?.parentSpanId, runs[1]?.spanId);
  assert.match(String(puts[0]?.attributes['aws.s3.key']), /traced-1/);

  // Every delivery try in the same trace: 500, then 200.
  const tries = named(spans, 'fluxq.webhook').sort(byAttempt);
  assert.deepEqual(tries.map((w) => [w.attributes['fluxq.attempt'], w.attributes['http.response.status_code'], w.attributes['fluxq.outcome']]), [[1, 500, 'retry'], [2, 200, 'delivered']]);
  for (const w of tries) {
    assert.equal(w.service, 'fluxq-worker');
    assert.equal(w.attributes['fluxq.job_id'], 'traced-1');
  }
  assert.equal(named(rx.spans, 'fluxq.webhook').length, 2, 'no delivery try outside the trace');
  assert.equal(named(rx.spans, 'fluxq.job').length, 2, 'no run outside the trace');
});

/** `fluxq api` on a free port: its URL, from its "listening" line. */
async function spawnApi(h: Harness, env: Record<string, string>) {
  const api = await h.spawnFluxq(['api'], { API_TOKEN: 'trace-token-0123456789', API_HOST: '127.0.0.1', API_PORT: '0', ...env }, /fluxq api listening/);
  const line = await api.waitForLine(/fluxq api listening/);
  const address = (JSON.parse(line) as { address: string }).address;
  return { api, address };
}

test('http/json: a job POSTed to fluxq api is one trace with its worker run (service names fluxq-api, fluxq-worker)', { timeout: 120_000 }, async (t) => {
  const rx = await startOtlpReceiver();
  t.after(() => rx.close());
  const h = await startHarness(t);
  const otel = otelEnv(rx, 'http/json');
  const worker = await h.spawnWorker(otel);
  const { api, address } = await spawnApi(h, otel);
  const res = await fetch(`${address}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: 'Bearer trace-token-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'traced-api', prompt: 'a quiet harbour', width: 256, height: 256 }),
  });
  assert.equal(res.status, 201, await res.text());
  await waitFor(async () => (await h.events()).some((e) => e.type === 'job.completed'), { timeoutMs: 60_000, what: 'job.completed' });
  await stop(api);
  await stop(worker);
  await waitFor(() => named(rx.spans, 'flux.generate').length >= 1 && named(rx.spans, 'fluxq.enqueue').length >= 1, { timeoutMs: 20_000, what: 'both processes\' spans' });
  assert.deepEqual(rx.errors, []);

  const { root, spans } = traceOf(rx, 'traced-api');
  assert.equal(root.service, 'fluxq-api');
  assert.equal(root.protocol, 'http/json');
  assertConnected(spans, root);
  const runs = named(spans, 'fluxq.job');
  assert.equal(runs.length, 1);
  assert.deepEqual([runs[0]?.service, runs[0]?.protocol, runs[0]?.attributes['fluxq.attempt'], runs[0]?.attributes['fluxq.outcome']], ['fluxq-worker', 'http/json', 1, 'completed']);
  assert.equal(runs[0]?.attributes['fluxq.batch_id'], undefined, 'a job without a batch has no fluxq.batch_id');
  const call = named(spans, 'flux.generate')[0];
  assert.equal(call?.parentSpanId, runs[0]?.spanId);
  assert.equal(call?.attributes['http.response.status_code'], 200);
  assert.equal(named(spans, 's3.put').length, 1);
});

test('a library user\'s active span is the parent of fluxq.enqueue; the job carries that trace; without a tracer, nothing', { timeout: 60_000 }, async (t) => {
  const h = await startHarness(t);
  const producer = h.producer();
  const metadataOf = async (id: string) => (await producer.queue.getJob(id))?.opts.telemetry?.metadata;

  // No tracer provider registered: the API's no-ops; the job carries no trace context.
  await producer.enqueue({ id: 'untraced', prompt: 'no tracing' });
  assert.equal(await metadataOf('untraced'), undefined, 'tracing off writes nothing into the job');

  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
  t.after(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
  });
  const userSpan = trace.getTracer('library-user').startSpan('user.request');
  await context.with(trace.setSpan(context.active(), userSpan), () => producer.enqueue({ id: 'traced-lib', prompt: 'in my span', batch: 'lib-batch' }));
  userSpan.end();

  const enqueue = exporter.getFinishedSpans().find((s) => s.name === 'fluxq.enqueue');
  assert.ok(enqueue, 'a fluxq.enqueue span');
  assert.equal(enqueue.spanContext().traceId, userSpan.spanContext().traceId, 'in the user\'s trace');
  assert.equal(enqueue.parentSpanContext?.spanId, userSpan.spanContext().spanId, 'the user\'s span is its parent');
  assert.deepEqual([enqueue.attributes['fluxq.job_id'], enqueue.attributes['fluxq.batch_id'], enqueue.attributes['fluxq.tenant']], ['traced-lib', 'lib-batch', 'default']);
  const carried = JSON.parse((await metadataOf('traced-lib')) ?? '{}') as { traceparent?: string };
  assert.equal(carried.traceparent?.split('-')[1], userSpan.spanContext().traceId, 'the job carries the trace to the worker');
  assert.equal(carried.traceparent?.split('-')[2], enqueue.spanContext().spanId, 'as the context of its fluxq.enqueue');
});
