import type { Telemetry } from 'bullmq';
import type { Config } from './config.js';

/**
 * Turning tracing on for a fluxq process (SPEC §9). With `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set, the OpenTelemetry SDK (tracing-sdk.ts) is
 * loaded and registered, exporting over OTLP; without them nothing is loaded and fluxq's
 * spans (spans.ts) stay the API's no-ops.
 */

/** `service.name` of each fluxq process when `OTEL_SERVICE_NAME` is unset. */
export const DEFAULT_SERVICE_NAMES = { worker: 'fluxq-worker', api: 'fluxq-api', cli: 'fluxq-cli' } as const;
export type TracedProcess = keyof typeof DEFAULT_SERVICE_NAMES;

export interface Tracing {
  /** BullMQ's telemetry (bullmq-otel) for every Queue and Worker of the process: it carries the context in each job. */
  telemetry: Telemetry;
  /** Export what is buffered, then stop (bounded by the exporter's own timeout). */
  shutdown(): Promise<void>;
}

export function tracingWanted(config: Config): boolean {
  return config.tracing.endpoint !== undefined || config.tracing.tracesEndpoint !== undefined;
}

/** Start exporting this process's spans, when an OTLP endpoint is configured; else undefined (and nothing loaded). */
export async function startTracing(config: Config, process: TracedProcess): Promise<Tracing | undefined> {
  if (!tracingWanted(config)) return undefined;
  const { startTracingSdk } = await import('./tracing-sdk.js');
  return startTracingSdk({ protocol: config.tracing.protocol, serviceName: config.tracing.serviceName ?? DEFAULT_SERVICE_NAMES[process] });
}
