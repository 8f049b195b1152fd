import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export interface LocalRedis {
  url: string;
  port: number;
  dir: string;
  process: ChildProcess;
  /** Stop it (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Stop, then start again on the same port and directory (AOF survives). */
  restart(): Promise<void>;
}

export interface LocalRedisOptions {
  port?: number;
  dir?: string;
  /** AOF with `appendfsync always` (fault tests); otherwise nothing is kept on disk. */
  appendonly?: boolean;
  extraArgs?: string[];
}

async function waitUntilUp(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch {
      client.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Start a private redis-server on 127.0.0.1 (for the demo and the tests). */
export async function startLocalRedis(opts: LocalRedisOptions = {}): Promise<LocalRedis> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'fluxq-redis-')));
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    ...(opts.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(opts.extraArgs ?? []),
  ];
  const state: { proc: ChildProcess } = { proc: spawn('redis-server', args, { stdio: 'ignore' }) };
  await waitUntilUp(port, 10_000);
  const stop = async () => {
    const proc = state.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get process() {
      return state.proc;
    },
    stop,
    restart: async () => {
      await stop();
      state.proc = spawn('redis-server', args, { stdio: 'ignore' });
      await waitUntilUp(port, 10_000);
    },
  };
}
