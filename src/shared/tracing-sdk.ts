import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { BullMQOtel } from 'bullmq-otel';
import type { TRACE_PROTOCOLS } from './config-shape.js';
import type { Tracing } from './tracing.js';

/**
 * The OpenTelemetry SDK, registered for the process (loaded by tracing.ts only when an
 * OTLP endpoint is set). The exporter reads its endpoint, headers and timeout from the
 * standard `OTEL_EXPORTER_OTLP_*` variables, the provider its sampler from
 * `OTEL_TRACES_SAMPLER(_ARG)`, the resource `OTEL_SERVICE_NAME` and
 * `OTEL_RESOURCE_ATTRIBUTES`: fluxq only picks the exporter for the protocol and the
 * default service name.
 */
export function startTracingSdk(opts: { protocol: (typeof TRACE_PROTOCOLS)[number]; serviceName: string }): Tracing {
  const exporter = opts.protocol === 'http/json' ? new OtlpJsonExporter() : new OtlpProtobufExporter();
  const resource = defaultResource()
    .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: opts.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  // The global provider, AsyncLocalStorage context and W3C trace-context propagation.
  provider.register();
  let stopped: Promise<void> | undefined;
  return {
    telemetry: new BullMQOtel({ tracerName: 'fluxq' }),
    shutdown: () => (stopped ??= provider.shutdown()),
  };
}
