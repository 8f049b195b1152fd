/** Small helpers shared by the bench scripts: statistics, bounded waits, child processes. */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export function median(values: readonly number[]): number | undefined {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0–100) of unsorted values; undefined when empty. */
export function percentile(values: readonly number[], p: number): number | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[rank];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolve with the promise, or reject after `ms` naming what was awaited. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `check` until it returns a value other than undefined, or throw after `ms`. */
export async function pollUntil<T>(check: () => Promise<T | undefined> | T | undefined, ms: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(everyMs);
  }
}

/** A child process whose stdout carries one JSON message per line and whose stderr is kept. */
export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  spawnedAt: number;
  stderr: string[];
  /** Every JSON message received on stdout so far. */
  messages: Record<string, unknown>[];
  /** Plain (non-JSON) stdout lines. */
  stdout: string[];
  exited: Promise<number | string>;
  /** Wait for a stdout JSON message matching `pred` (ones already received count). */
  waitMessage(pred: (m: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>>;
  /** Wait for a stderr line matching `re`. */
  waitStderr(re: RegExp, ms: number): Promise<string>;
  send(msg: Record<string, unknown>): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string>;
}

const live = new Set<Child>();

/** Every child still running (for the final clean-up). */
export function liveChildren(): Child[] {
  return [...live];
}

export function spawnChild(name: string, command: string, args: string[], opts: SpawnOptions): Child {
  const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  const stderr: string[] = [];
  const stdout: string[] = [];
  const messages: Record<string, unknown>[] = [];
  const waiters: { test: () => boolean }[] = [];
  const wake = () => {
    for (const w of [...waiters]) if (w.test()) waiters.splice(waiters.indexOf(w), 1);
  };
  const lineReader = (onLine: (l: string) => void) => {
    let buf = '';
    return (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    };
  };
  proc.stdout?.on(
    'data',
    lineReader((l) => {
      const t = l.trim();
      if (t.startsWith('{')) {
        try {
          messages.push(JSON.parse(t) as Record<string, unknown>);
        } catch {
          stdout.push(l);
        }
      } else if (t) stdout.push(l);
      wake();
    }),
  );
  proc.stderr?.on(
    'data',
    lineReader((l) => {
      stderr.push(l);
      if (stderr.length > 2000) stderr.splice(0, 1000);
      wake();
    }),
  );
  proc.stdin?.on('error', () => undefined);
  let exitValue: number | string | undefined;
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, sig) => {
      exitValue = code ?? sig ?? -1;
      live.delete(child);
      resolve(exitValue);
      wake();
    }),
  );
  const waitFor = <T>(find: () => T | undefined, ms: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`${name}: timed out after ${ms} ms waiting for ${what}; last stderr:\n${stderr.slice(-8).join('\n')}`));
      }, ms);
      const w = {
        test: () => {
          const found = find();
          if (found !== undefined) {
            clearTimeout(timer);
            resolve(found);
            return true;
          }
          if (exitValue !== undefined) {
            clearTimeout(timer);
            reject(new Error(`${name} exited (${exitValue}) while waiting for ${what}; last stderr:\n${stderr.slice(-8).join('\n')}`));
            return true;
          }
          return false;
        },
      };
      if (!w.test()) waiters.push(w);
    });
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    spawnedAt: Date.now(),
    stderr,
    stdout,
    messages,
    exited,
    waitMessage: (pred, ms, what) => waitFor(() => messages.find(pred), ms, what),
    waitStderr: (re, ms) => waitFor(() => stderr.find((l) => re.test(l)), ms, `a stderr line matching ${re}`),
    send: (msg) => {
      proc.stdin?.write(`${JSON.stringify(msg)}\n`);
    },
    stop: async (graceMs = 15_000) => {
      if (exitValue !== undefined) return exitValue;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      const v = await exited;
      clearTimeout(timer);
      return v;
    },
  };
  live.add(child);
  return child;
}

/** Read newline-delimited JSON commands from stdin (for the bench's own child scripts). */
export function onStdinCommands(handle: (cmd: Record<string, unknown>) => void): void {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      try {
        handle(JSON.parse(line) as Record<string, unknown>);
      } catch (err) {
        process.stderr.write(`bad command ${line}: ${(err as Error).message}\n`);
      }
    }
  });
}

/** Write one JSON message on stdout (the parent reads them line by line). */
export function emit(msg: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

/**
 * What a bench script must undo, run once in reverse order whatever happens: children
 * are first sent `firstSignal` (all of them, or only those `firstOnly` picks), each
 * clean-up gets `timeoutMs`, then whatever child is left is SIGKILLed. SIGINT/SIGTERM
 * run it and exit 130.
 */
export class CleanUps {
  readonly #steps: { name: string; fn: () => Promise<unknown> }[] = [];
  #running: Promise<void> | undefined;

  constructor(
    private readonly opts: { log: (msg: string) => void; timeoutMs: number; firstSignal: NodeJS.Signals; firstOnly?: (c: Child) => boolean; signalMessage: string },
  ) {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        opts.log(`${sig}: ${opts.signalMessage}`);
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  push(step: { name: string; fn: () => Promise<unknown> }): void {
    this.#steps.push(step);
  }

  run(): Promise<void> {
    this.#running ??= (async () => {
      for (const c of liveChildren()) if (!this.opts.firstOnly || this.opts.firstOnly(c)) c.proc.kill(this.opts.firstSignal);
      for (const { name, fn } of this.#steps.reverse()) {
        await withTimeout(Promise.resolve().then(fn), this.opts.timeoutMs, `clean-up of ${name}`).catch((err: unknown) => this.opts.log(`clean-up of ${name}: ${(err as Error).message}`));
      }
      for (const c of liveChildren()) c.proc.kill('SIGKILL');
    })();
    return this.#running;
  }
}

/**
 * A bench script's end: run `main`, print its error if it throws, run the clean-ups and
 * `after` whatever happens, log the duration and exit with main's code (1 on an error).
 */
export async function runToExit(opts: { name: string; main: () => Promise<number>; cleanups: CleanUps; log: (msg: string) => void; t0: number; after?: () => Promise<void> }): Promise<never> {
  let code = 1;
  try {
    code = await opts.main();
  } catch (err) {
    console.error(`${opts.name} failed: ${(err as Error).stack ?? String(err)}`);
    code = 1;
  } finally {
    await opts.cleanups.run();
    await opts.after?.();
  }
  opts.log(`done in ${((Date.now() - opts.t0) / 1000).toFixed(0)} s`);
  process.exit(code);
}
