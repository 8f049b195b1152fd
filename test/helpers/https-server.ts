/**
 * A local HTTPS server on 127.0.0.1 with a self-signed certificate (openssl) valid for
 * 127.0.0.1, `localhost` and the made-up `*.example.test` names tests resolve there,
 * serving test files. Its URLs name `localhost` unless told another host: what works
 * on loopback must work through a name.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Made-up names the certificate is valid for (tests inject a resolver that answers 127.0.0.1 for them). */
export const TEST_NAMES = ['images.example.test', 'hooks.example.test'] as const;

let cached: { key: Buffer; cert: Buffer; certPath: string } | undefined;

/** The key and certificate, and the certificate's file (for a child's NODE_EXTRA_CA_CERTS). */
export function selfSignedCert(): { key: Buffer; cert: Buffer; certPath: string } {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'fluxq-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', `subjectAltName=IP:127.0.0.1,DNS:localhost,${TEST_NAMES.map((n) => `DNS:${n}`).join(',')}`, '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cached = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), certPath: join(dir, 'cert.pem') };
  return cached;
}

export interface FileServer {
  /** `https://localhost:PORT{path}`, or another host name (one of TEST_NAMES, or 127.0.0.1). */
  url(path: string, host?: string): string;
  cert: Buffer;
  certPath: string;
  /** path (without the query) → body (or a status to answer). */
  files: Map<string, Buffer | number>;
  /** Every request's path, query included. */
  requests: string[];
  close(): Promise<void>;
}

export async function startHttpsFileServer(): Promise<FileServer> {
  const { key, cert, certPath } = selfSignedCert();
  const files = new Map<string, Buffer | number>();
  const requests: string[] = [];
  const server: Server = createServer({ key, cert }, (req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const f = files.get(path.replace(/\?.*$/s, '')); // a query (a presigned URL's signature) does not change the file
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
    url: (p, host = 'localhost') => `https://${host}:${port}${p}`,
    cert,
    certPath,
    files,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
