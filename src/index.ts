/**
 * fluxq's public library surface. Named exports only; anything not here is internal.
 * It loads production dependencies only: the fake upstream and the local S3/Redis
 * stand-ins are the separate entry `fluxq/testing` (src/testing.ts).
 */
export { loadConfig, CONFIG_VARIABLES, type Config, type ConfigRole } from './shared/config.js';
export {
  UpstreamError,
  InputError,
  StorageError,
  BudgetError,
  ConfigError,
  ValidationError,
  QueueUnavailableError,
  type UpstreamErrorKind,
  type FieldProblem,
} from './shared/errors.js';
export { parseEnvelope, envelopeSchema, isValidJobId, type Envelope } from './shared/envelope.js';
export { toUpstreamBody, INPUT_IMAGE_FIELDS, type UpstreamBody, type GenerationParams, type InputImageField } from './shared/upstream.js';
export { EVENT, eventVisibleTo, type EventType, type EventData, type FluxqEvent, type StoredImage } from './shared/events.js';
export type { JobResult } from './shared/result.js';
export { redisKeys, jobImageFolder, imageKey, manifestKey, inputImageKey } from './shared/keys.js';
export { createRedis, type RedisClient } from './shared/redis.js';
export { createS3Client } from './shared/s3.js';
export { createLogger, type Logger } from './shared/logger.js';
export { Secret } from './shared/secret.js';
export {
  createProducer,
  validateRequests,
  BulkValidationError,
  type Producer,
  type ProducerOptions,
  type EnqueueOptions,
  type EnqueueOutcome,
  type BulkEnqueueResult,
} from './producer/producer.js';
export type { JobStatus, JobState } from './producer/job-status.js';
export type { BatchStatus } from './producer/batch-status.js';
export { createWorker, type CreateWorkerOptions, type FluxqWorker } from './worker/worker.js';
export { FluxClient, type FluxClientOptions } from './worker/flux-client.js';
export { kindForStatus, parseRetryAfter, classifyHttpError, classifyTransportError } from './worker/classify.js';
export { decodeUpstreamResponse } from './worker/decode.js';
