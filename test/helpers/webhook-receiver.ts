/**
 * A webhook receiver for tests: records every delivery (raw body, headers) and answers as
 * told. Its URLs name `localhost` (what works on loopback must work through a name).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

export type Answer = number | 'hang';

export interface WebhookReceiver {
  /** `http://localhost:PORT{path}` (the server is on 127.0.0.1), or another host (a made-up name a test resolves, 127.0.0.1). */
  url(path?: string, host?: string): string;
  deliveries: Delivery[];
  /** Decide each answer: by path and the number of earlier deliveries to that path. */
  answer: (path: string, nthForPath: number) => Answer;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const held = new Set<ServerResponse>();
  const r: WebhookReceiver = {
    url: () => '',
    deliveries: [],
    answer: () => 200,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const nth = r.deliveries.filter((d) => d.path === path).length;
      r.deliveries.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      const a = r.answer(path, nth);
      if (a === 'hang') {
        held.add(res);
        return;
      }
      res.writeHead(a, { 'content-type': 'text/plain' });
      res.end(String(a));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  r.url = (path = '/hook', host = 'localhost') => `http://${host}:${port}${path}`;
  return r;
}
