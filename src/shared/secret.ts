import { inspect } from 'node:util';

/**
 * A secret value (API key, S3 secret, webhook secret, API token) that cannot leak by
 * accident: JSON.stringify, String(), template literals and util.inspect all print
 * `[redacted]`. Only `reveal()` gives the value, at the one place that needs it.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return '[redacted]';
  }
}
