/**
 * A private 3-master Redis Cluster on 127.0.0.1 for tests: three `redis-server
 * --cluster-enabled yes` on free ports, joined with `redis-cli --cluster create`
 * (no replicas), ready once `CLUSTER INFO` says `cluster_state:ok` on every node.
 * Every wait is bounded; `stop()` ends the nodes (SIGTERM, then SIGKILL) and removes
 * their directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/demo/local-redis.js';

export interface RedisCluster {
  /** `redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3` (REDIS_URL with REDIS_CLUSTER=1). */
  urls: string;
  /** The same, one URL per node. */
  nodeUrls: string[];
  ports: number[];
  dir: string;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** How long start-up may take in all (default 30 s). */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One short-lived client that never retries: an answer or an error, at once. */
async function ask(port: number, ...command: string[]): Promise<string> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return String(await client.call(command[0] as string, ...command.slice(1)));
  } finally {
    client.disconnect();
  }
}

async function until(what: string, deadline: number, check: () => Promise<boolean>): Promise<void> {
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} not reached in time${last ? ` (${(last as Error).message})` : ''}`);
    await sleep(100);
  }
}

function stopProcess(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/** Run a command to its end within `timeoutMs`; throws with its output when it fails. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code ?? sig}:\n${out.slice(-2000)}`));
    });
  });
}

export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const dir = await mkdtemp(join(tmpdir(), 'fluxq-redis-cluster-'));
  const ports: number[] = [];
  // freePort releases the port before returning: ask three times, refusing repeats.
  while (ports.length < 3) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  const procs = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '2000',
        '--appendonly', 'no',
        '--save', '',
        '--maxmemory-policy', 'noeviction',
        '--dir', dir,
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = async () => {
    await Promise.all(procs.map((p) => stopProcess(p)));
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    for (const [i, proc] of procs.entries()) {
      await until(`redis-server on port ${ports[i]} answering PING`, deadline, async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server on port ${ports[i]} exited ${proc.exitCode}`);
        return (await ask(ports[i] as number, 'PING')) === 'PONG';
      });
    }
    const remaining = Math.max(1000, deadline - Date.now());
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], remaining);
    for (const port of ports) {
      await until(`cluster_state:ok on port ${port}`, deadline, async () => /cluster_state:ok/.test(await ask(port, 'CLUSTER', 'INFO')));
    }
    // Every node must also know all three masters with their slots (gossip), or a client
    // seeded from one node could see a partial map.
    for (const port of ports) {
      await until(`3 masters known on port ${port}`, deadline, async () => {
        const info = await ask(port, 'CLUSTER', 'INFO');
        return /cluster_known_nodes:3\b/.test(info) && /cluster_slots_assigned:16384\b/.test(info) && /cluster_size:3\b/.test(info);
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const nodeUrls = ports.map((p) => `redis://127.0.0.1:${p}`);
  return { urls: nodeUrls.join(','), nodeUrls, ports, dir, stop };
}
