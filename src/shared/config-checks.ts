import type { ConfigRole } from './config-shape.js';
import type { ConfigValues } from './config-table.js';
import { RESERVED_QUEUE_NAMES } from './config-table.js';
import { shown } from './config-values.js';

/**
 * The rules that involve more than one variable, or the role that starts: pairs set together,
 * what each role requires, the cluster prefix rule, AUTO min ≤ max, reserved queue names.
 * `values` holds every variable as parsed, or its default (also when it failed to parse).
 */
export function crossChecks(values: ConfigValues, role: ConfigRole): string[] {
  const problems: string[] = [];
  if (values.REDIS_CLUSTER && !/^\{[^}]+\}/.test(values.QUEUE_PREFIX)) {
    problems.push(`QUEUE_PREFIX must start with a hash tag such as {fluxq} when REDIS_CLUSTER=1, got ${shown(values.QUEUE_PREFIX)}`);
  }
  if (!values.REDIS_CLUSTER && values.REDIS_URL.length > 1) {
    problems.push('REDIS_URL holds several URLs; set REDIS_CLUSTER=1 for a Redis Cluster or give one URL');
  }
  if (RESERVED_QUEUE_NAMES.includes(values.QUEUE_NAME)) {
    problems.push(`QUEUE_NAME must not be one of ${RESERVED_QUEUE_NAMES.join(', ')} (fluxq keys use them), got ${shown(values.QUEUE_NAME)}`);
  }
  problems.push(...pair(values, 'RATE_LIMIT_MAX', 'RATE_LIMIT_DURATION_MS'), ...pair(values, 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'));
  const { AUTO_CONCURRENCY_MIN: min, AUTO_CONCURRENCY_MAX: max } = values;
  if (min > max) problems.push(`AUTO_CONCURRENCY_MIN must be ≤ AUTO_CONCURRENCY_MAX, got ${min} > ${max}`);
  if (role === 'worker') {
    if (!values.FLUX_API_KEY && !values.MODELVERSE_API_KEY) problems.push('FLUX_API_KEY (or MODELVERSE_API_KEY) is required by the worker');
    if (!values.S3_BUCKET) problems.push('S3_BUCKET is required by the worker');
  }
  if (role === 'api') {
    if (!values.S3_BUCKET) problems.push('S3_BUCKET is required by the API (presigned URLs, health check, inline inputs)');
    if (!values.API_TOKEN && !values.API_INSECURE) problems.push('API_TOKEN is required by the API (or set API_INSECURE=1 to run without auth)');
  }
  return problems;
}

/** Two variables that are set together or not at all. */
function pair(values: ConfigValues, a: keyof ConfigValues, b: keyof ConfigValues): string[] {
  if ((values[a] === undefined) === (values[b] === undefined)) return [];
  return values[a] === undefined ? [`${a} is required when ${b} is set`] : [`${b} is required when ${a} is set`];
}
