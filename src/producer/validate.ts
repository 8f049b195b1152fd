import { parseEnvelope, type Envelope } from '../shared/envelope.js';
import { ValidationError, type FieldProblem } from '../shared/errors.js';

/** One bad item of a bulk: its index and every bad field. */
export interface ItemProblems {
  index: number;
  details: FieldProblem[];
}

/** Validation of a bulk: one entry per bad item, nothing enqueued. */
export class BulkValidationError extends ValidationError {
  readonly items: ItemProblems[];

  constructor(items: ItemProblems[]) {
    super(
      items.flatMap((it) => it.details.map((d) => ({ path: d.path ? `${it.index}.${d.path}` : String(it.index), message: d.message }))),
      `${items.length} invalid request(s); nothing was enqueued`,
    );
    this.items = items;
  }
}

/**
 * Validate requests without touching Redis or S3: every bad field of every item, and
 * ids used twice. Pure; the CLI uses it to report all lines before enqueueing any.
 */
export function validateRequests(requests: readonly unknown[]): { envelopes: (Envelope | undefined)[]; problems: ItemProblems[] } {
  const problems: ItemProblems[] = [];
  const envelopes: (Envelope | undefined)[] = requests.map((req, index) => {
    try {
      return parseEnvelope(req);
    } catch (err) {
      if (err instanceof ValidationError) problems.push({ index, details: err.details });
      else throw err;
      return undefined;
    }
  });
  const seen = new Map<string, number>();
  envelopes.forEach((env, index) => {
    if (!env?.id) return;
    const first = seen.get(env.id);
    if (first !== undefined) problems.push({ index, details: [{ path: 'id', message: `"${env.id}" is used twice (first at item ${first})` }] });
    else seen.set(env.id, index);
  });
  problems.sort((a, b) => a.index - b.index);
  return { envelopes, problems };
}
