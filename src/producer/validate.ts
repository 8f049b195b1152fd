import { refuseWithoutDns } from '../shared/address-policy.js';
import type { Config } from '../shared/config.js';
import { envelopeInputs, parseEnvelope, type Envelope } from '../shared/envelope.js';
import { InputError, ValidationError, type FieldProblem } from '../shared/errors.js';
import { redactUrl } from '../shared/redact-url.js';
import type { InputImageField } from '../shared/upstream.js';
import { allowedInputBuckets, s3RefProblem } from '../shared/s3-ref.js';
import { decodeInlineImage, inputForm } from './inputs.js';

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

export const WEBHOOK_SCHEMES = ['http:', 'https:'];

/** Why a webhook URL is refused at enqueue, when that can be decided without DNS (SPEC §7). */
export function refuseWebhookUrl(url: string, config: Config): string | undefined {
  try {
    return refuseWithoutDns(new URL(url), { allowedHosts: config.webhooks.allowedHosts }, WEBHOOK_SCHEMES);
  } catch {
    return 'is not a valid URL';
  }
}

export interface ValidateOptions {
  /** For the rules that depend on it: webhook hosts, input size cap, private input URLs. */
  config?: Config;
  /** CLI: whether a value that is none of the forms names an existing local file. */
  localFile?: (value: string) => boolean;
}

export interface Validated {
  envelopes: (Envelope | undefined)[];
  problems: ItemProblems[];
  /** Inline input images already decoded (and checked) here, by item and field. */
  decoded: Map<number, Partial<Record<InputImageField, Buffer>>>;
}

/** The input rules that need no network: form, strict base64, magic bytes, size, URL shape. */
function checkInputs(env: Envelope, index: number, opts: ValidateOptions, decoded: Validated['decoded']): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const maxBytes = opts.config?.inputs.maxBytes ?? 20_971_520;
  const buckets = opts.config ? allowedInputBuckets(opts.config) : undefined;
  for (const [field, value] of Object.entries(envelopeInputs(env)) as [InputImageField, string][]) {
    try {
      const form = inputForm(value);
      if (form === 's3') {
        const why = s3RefProblem(value, buckets);
        if (why) throw new InputError(field, why);
      } else if (form === 'https') {
        let url: URL;
        try {
          url = new URL(value);
        } catch {
          throw new InputError(field, 'is not a valid https:// URL');
        }
        const why = refuseWithoutDns(url, { allowPrivate: opts.config?.inputs.allowPrivateUrls ?? false }, ['https:']);
        if (why) throw new InputError(field, `${redactUrl(value)} is refused: ${why}`);
      } else if (form === 'data-url' || form === 'base64') {
        decoded.set(index, { ...decoded.get(index), [field]: decodeInlineImage(field, value, maxBytes) });
      } else if (!opts.localFile) {
        throw new InputError(field, 'must be base64, a data:image/…;base64, URL, s3://bucket/key or an https:// URL');
      } else if (!opts.localFile(value)) {
        if (/^(\.\/|\.\.\/|\/)/.test(value)) throw new InputError(field, `file ${value.slice(0, 200)} not found (paths are relative to the JSONL file)`);
        throw new InputError(field, 'must be base64, a data:image/…;base64, URL, s3://bucket/key, an https:// URL, or an existing file');
      }
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      problems.push({ path: field, message: err.message.slice(field.length + 2) });
    }
  }
  return problems;
}

/**
 * Validate requests without enqueueing anything: every bad field of every item, input
 * images decoded and checked, webhook URLs checked, ids used twice. The CLI uses it to
 * report every bad line before enqueueing any.
 */
export function validateRequests(requests: readonly unknown[], opts: ValidateOptions = {}): Validated {
  const problems: ItemProblems[] = [];
  const decoded: Validated['decoded'] = new Map();
  const envelopes: (Envelope | undefined)[] = requests.map((req, index) => {
    try {
      const env = parseEnvelope(req);
      const details = checkInputs(env, index, opts, decoded);
      const why = env.webhook_url && opts.config ? refuseWebhookUrl(env.webhook_url, opts.config) : undefined;
      if (why) details.push({ path: 'webhook_url', message: `refused: ${why}` });
      if (details.length > 0) problems.push({ index, details });
      return details.length > 0 ? undefined : env;
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
  return { envelopes, problems, decoded };
}
