/** A local HTTPS server with a self-signed certificate for 127.0.0.1 (openssl), serving test files. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let cached: { key: Buffer; cert: Buffer } | undefined;

export function selfSignedCert(): { key: Buffer; cert: Buffer } {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'fluxq-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cached = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  return cached;
}

export interface FileServer {
  url(path: string): string;
  cert: Buffer;
  /** path → body (or a status to answer). */
  files: Map<string, Buffer | number>;
  requests: string[];
  close(): Promise<void>;
}

export async function startHttpsFileServer(): Promise<FileServer> {
  const { key, cert } = selfSignedCert();
  const files = new Map<string, Buffer | number>();
  const requests: string[] = [];
  const server: Server = createServer({ key, cert }, (req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const f = files.get(path);
    if (f === undefined) {
      res.writeHead(404).end('missing');
    } else if (typeof f === 'number') {
      if (f >= 300 && f < 400) res.writeHead(f, { location: '/redirected.png' }).end();
      else res.writeHead(f).end(String(f));
    } else {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(f.length) }).end(f);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p) => `https://127.0.0.1:${port}${p}`,
    cert,
    files,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
