/**
 * `fluxq/testing`: the local stand-ins the demo, the tests and the bench run on — the
 * fake flux-2-pro upstream, a local S3-compatible store (s3rver), a private
 * redis-server and decodable synthetic images. A separate entry so the main one (`fluxq`)
 * never loads s3rver, pngjs or jpeg-js: they are development dependencies, absent from a
 * production install (`npm ci --omit=dev`).
 */
export { FakeFlux, startFakeFlux, type FakeFluxOptions, type Fault, type FaultRule, type CallRecord } from './demo/fake-flux.js';
export { startLocalS3, LOCAL_S3_CREDENTIALS, type LocalS3 } from './demo/local-s3.js';
export { startLocalRedis, redisServerAvailable, freePort, type LocalRedis, type LocalRedisOptions } from './demo/local-redis.js';
export { synthPng, synthJpeg, TINY_WEBP, type SynthOptions, type SplitPng } from './demo/synth-image.js';
