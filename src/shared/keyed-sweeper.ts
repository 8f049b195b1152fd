import type { Logger } from './logger.js';

/**
 * A timer that looks for ids owing work (`list`) and runs `step` for each, never two
 * steps of one id at once in this process: a step asked for while one runs joins it.
 * A failed step or list is logged and left to the next round. The batch completer
 * (batch.completed and the manifest) and the OpenAI batch runner are ones.
 */
export interface KeyedSweepOptions {
  everyMs: number;
  /** What is swept, for the log lines ("batch completion"). */
  what: string;
  log: Logger;
  /** Wait for each step before the next id (default: start them all). */
  oneAtATime?: boolean;
  /** The ids that owe a step now. */
  owed: () => Promise<readonly string[]>;
}

export abstract class KeyedSweeper {
  readonly #o: KeyedSweepOptions;
  readonly #running = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: KeyedSweepOptions) {
    this.#o = opts;
  }

  /** One id's step. */
  protected abstract step(id: string): Promise<void>;

  /** Sweep now, then every `everyMs`. */
  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#o.everyMs);
    this.#timer.unref();
    void this.sweep();
  }

  /** Stop the timer and wait for the steps running now. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#running.values()]);
  }

  async sweep(): Promise<void> {
    try {
      for (const id of await this.#o.owed()) {
        const p = this.run(id);
        if (this.#o.oneAtATime) await p;
      }
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, `${this.#o.what} sweep failed; will retry`);
    }
  }

  /** Run `id`'s step now, or join the one running. Never rejects. */
  run(id: string): Promise<void> {
    const running = this.#running.get(id);
    if (running) return running;
    const p = this.step(id)
      .catch((err: unknown) => this.#o.log.warn({ batchId: id, err: (err as Error).message }, `${this.#o.what} failed; the sweeper retries it`))
      .finally(() => this.#running.delete(id));
    this.#running.set(id, p);
    return p;
  }
}
