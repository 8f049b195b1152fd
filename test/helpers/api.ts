/** Start the HTTP API in-process on a free 127.0.0.1 port for a harness. */
import type { AddressInfo } from 'node:net';
import { buildApi, type Api, type ApiOptions } from '../../src/producer/api/server.js';
import { createProducer } from '../../src/producer/producer.js';
import { createS3Client } from '../../src/shared/s3.js';
import type { Harness } from './harness.js';

export const API_TOKEN = 'test-api-token-0123456789';

export interface RunningApi {
  url: string;
  api: Api;
  /** fetch with the Bearer token (unless headers say otherwise). */
  call(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
  close(): Promise<void>;
}

export async function startApi(h: Harness, extra: Record<string, string> = {}, opts: ApiOptions = {}): Promise<RunningApi> {
  const config = h.config('api', { API_TOKEN, API_HOST: '127.0.0.1', API_PORT: '0', ...extra });
  const s3 = createS3Client(config);
  const producer = createProducer({ config, logger: h.logger, s3 });
  const api = await buildApi({ config, producer, s3, logger: h.logger }, opts);
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(api.app.server.address() as AddressInfo).port}`;
  const running: RunningApi = {
    url,
    api,
    call: (path, init = {}) => {
      const headers = new Headers(init.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${API_TOKEN}`);
      let body = init.body;
      if (init.json !== undefined) {
        headers.set('content-type', 'application/json');
        body = JSON.stringify(init.json);
      }
      return fetch(`${url}${path}`, { ...init, headers, body, redirect: 'manual' });
    },
    close: async () => {
      await api.close();
      await producer.close();
      s3.destroy();
    },
  };
  return running;
}
