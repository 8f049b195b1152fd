/**
 * An HTTP proxy in front of s3rver that tests control: see every request and its
 * answer before the client does (to SIGKILL a worker right after its upload landed),
 * or take S3 "down" (connections reset) and bring it back.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface S3ProxyEvent {
  method: string;
  /** Path without the query string: `/{bucket}/{key}`. */
  path: string;
  status: number;
}

export interface S3Proxy {
  endpoint: string;
  /** Called after s3rver answered, before the answer is relayed. */
  onAnswered?: (e: S3ProxyEvent) => void;
  down: boolean;
  requests: S3ProxyEvent[];
  close(): Promise<void>;
}

export async function startS3Proxy(targetEndpoint: string): Promise<S3Proxy> {
  const target = new URL(targetEndpoint);
  const sockets = new Set<Socket>();
  const proxy: S3Proxy = {
    endpoint: '',
    down: false,
    requests: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    if (proxy.down) {
      req.socket.destroy();
      return;
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (ans) => {
        const event = { method: req.method ?? '', path: (req.url ?? '').split('?')[0] ?? '', status: ans.statusCode ?? 0 };
        proxy.requests.push(event);
        proxy.onAnswered?.(event);
        res.writeHead(ans.statusCode ?? 502, ans.headers);
        ans.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    if (proxy.down) s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
