import type { Logger } from './logger.js';

/**
 * Whether `p` settled within `ms` (its outcome is not looked at). The timer is cleared
 * either way, so nothing is left running after it.
 */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface Closer {
  name: string;
  close: () => Promise<unknown> | unknown;
  timeoutMs: number;
}

/**
 * What a component opened, closed in reverse order from one list: each thing registers
 * its close when it is created; `close()` runs them last-first, each bounded by its
 * timeout, logging (never throwing) what fails or hangs. Idempotent.
 */
export class Closers {
  readonly #log: Logger;
  readonly #closers: Closer[] = [];
  #closing: Promise<void> | undefined;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Register `close` for `name`; returns `thing` so creation and registration read as one line. */
  add<T>(name: string, thing: T, close: (thing: T) => Promise<unknown> | unknown, timeoutMs = 10_000): T {
    this.#closers.push({ name, close: () => close(thing), timeoutMs });
    return thing;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const c of [...this.#closers].reverse()) {
        const closed = (async () => c.close())().catch((err: unknown) => this.#log.warn({ err: (err as Error).message, closing: c.name }, `closing ${c.name} failed`));
        if (!(await settlesWithin(closed, c.timeoutMs))) this.#log.warn({ closing: c.name, timeoutMs: c.timeoutMs }, `closing ${c.name} took too long; moving on`);
      }
    })();
    return this.#closing;
  }
}
