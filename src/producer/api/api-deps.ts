import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../../shared/config.js';
import type { Logger } from '../../shared/logger.js';
import type { Producer } from '../producer.js';

/** What every route module is built from. */
export interface ApiDeps {
  config: Config;
  producer: Producer;
  s3: S3Client;
  logger: Logger;
}
