/**
 * An HTTP proxy in front of s3rver that tests control: see every request and its
 * answer before the client does (to SIGKILL a worker right after its upload landed),
 * take S3 "down" (connections reset) and bring it back, or have S3 answer a request
 * with an error of the test's choosing (`fault`).
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface S3ProxyEvent {
  method: string;
  /** Path without the query string: `/{bucket}/{key}`. */
  path: string;
  status: number;
}

/** An S3 error answer: the status and S3's XML `<Error>` body with this code and message. */
export interface S3Fault {
  status: number;
  code: string;
  message: string;
}

export interface S3Proxy {
  endpoint: string;
  /** Called after s3rver answered, before the answer is relayed. */
  onAnswered?: (e: S3ProxyEvent) => void;
  down: boolean;
  /** Asked for every request: a fault to answer it with instead of relaying it to s3rver. */
  fault?: (req: { method: string; path: string }) => S3Fault | undefined;
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
    const path = (req.url ?? '').split('?')[0] ?? '';
    const fault = proxy.fault?.({ method: req.method ?? '', path });
    if (fault) {
      // Read the body first, as S3 does, so the client's connection stays usable.
      req.resume();
      req.on('end', () => {
        const event = { method: req.method ?? '', path, status: fault.status };
        proxy.requests.push(event);
        proxy.onAnswered?.(event);
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>${fault.message}</Message><RequestId>fluxq-test</RequestId></Error>`;
        res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'fluxq-test' });
        res.end(body);
      });
      return;
    }
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (ans) => {
        const event = { method: req.method ?? '', path, status: ans.statusCode ?? 0 };
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
