import { pino, stdSerializers, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { LogLevel } from './config.js';

export type Logger = PinoLogger;

/**
 * Paths that are never written, at any level. Secrets are also `Secret` objects that
 * print `[redacted]`; this is the second fence for values that arrive as plain strings.
 */
export const REDACT_PATHS = [
  'apiKey', '*.apiKey',
  'authorization', '*.authorization', 'Authorization', '*.Authorization',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization', 'req.headers.cookie',
  'secret', '*.secret', 'webhook_secret', '*.webhook_secret', 'webhookSecret', '*.webhookSecret',
  'secretAccessKey', '*.secretAccessKey', 'token', '*.token', 'password', '*.password',
  'b64_json', '*.b64_json', 'data[*].b64_json',
];

/** Longest string a log line keeps; longer ones (base64 payloads above all) are cut. */
export const MAX_LOGGED_STRING = 512;

function truncateDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') {
    return value.length > MAX_LOGGED_STRING ? `${value.slice(0, 64)}…[${value.length} chars truncated]` : value;
  }
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => truncateDeep(v, depth + 1));
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = truncateDeep(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  name?: string;
  /** Where lines go; stderr by default so stdout stays for command output. */
  destination?: DestinationStream;
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'fluxq',
      base: { pid: process.pid, ...opts.base },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        err: (err: Error) => truncateDeep(stdSerializers.err(err)) as ReturnType<typeof stdSerializers.err>,
      },
      formatters: { log: (obj) => truncateDeep(obj) as Record<string, unknown> },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that writes nothing, for library callers who pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
