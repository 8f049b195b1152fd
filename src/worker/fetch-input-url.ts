import { request } from 'undici';
import { refuseWithoutDns, type AddressPolicy } from '../shared/address-policy.js';
import { InputError, InputUnavailableError } from '../shared/errors.js';
import { isRefusedAddress, pinnedAgent } from '../shared/pinned-agent.js';
import { redactUrl } from '../shared/redact-url.js';
import type { InputImageField } from '../shared/upstream.js';

export interface UrlInputFetcherOptions {
  /** INPUT_URL_ALLOW_PRIVATE: private and loopback addresses allowed. */
  allowPrivate: boolean;
  timeoutMs: number;
  /** MAX_INPUT_IMAGE_BYTES: bigger answers are cut off and refused. */
  maxBytes: number;
  /** Extra CA for TLS (tests with a self-signed server; production uses the system store). */
  ca?: string | Buffer | undefined;
  resolver?: AddressPolicy['resolver'];
}

const MAX_REDIRECTS = 3;

export interface UrlInputFetcher {
  fetch(field: InputImageField, url: string, signal?: AbortSignal): Promise<Buffer>;
  close(): Promise<void>;
}

/**
 * Fetch an `https://` input image for the worker (SPEC §7 Input images): a deadline,
 * a size cap enforced while reading, up to three redirects (each hop checked again),
 * and private or loopback addresses refused before any connection unless
 * INPUT_URL_ALLOW_PRIVATE=1. A bad input is an InputError naming the field (permanent,
 * no upstream call); a server that is down or slow is InputUnavailableError (retried).
 * Every reason shows the URL through `redactUrl`.
 */
export function createUrlInputFetcher(opts: UrlInputFetcherOptions): UrlInputFetcher {
  const policy: AddressPolicy = { allowPrivate: opts.allowPrivate, ...(opts.resolver ? { resolver: opts.resolver } : {}) };
  const agent = pinnedAgent(policy, { timeoutMs: opts.timeoutMs, ca: opts.ca });

  async function fetchOnce(field: InputImageField, original: string, signal?: AbortSignal): Promise<Buffer> {
    // Reasons name the URL without its query or credentials (a presigned URL's signature).
    const shown = redactUrl(original);
    let url = new URL(original);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const why = refuseWithoutDns(url, policy, ['https:']);
      if (why) throw new InputError(field, `${shown} is refused: ${why}`);
      const deadline = AbortSignal.timeout(opts.timeoutMs);
      let res;
      try {
        res = await request(url, { method: 'GET', dispatcher: agent, signal: signal ? AbortSignal.any([signal, deadline]) : deadline, headers: { accept: 'image/*' } });
      } catch (err) {
        const refused = isRefusedAddress(err);
        if (refused) throw new InputError(field, `${shown} is refused: ${refused.message}`);
        if (signal?.aborted) throw err;
        if (deadline.aborted) throw new InputUnavailableError(field, `${shown}: no answer within INPUT_URL_TIMEOUT_MS (${opts.timeoutMs} ms)`);
        throw new InputUnavailableError(field, `${shown}: ${(err as Error).message}`, { cause: err });
      }
      const status = res.statusCode;
      if (status >= 300 && status < 400 && res.headers.location) {
        await res.body.dump();
        url = new URL(String(res.headers.location), url);
        continue;
      }
      if (status === 404 || status === 410) {
        await res.body.dump();
        throw new InputError(field, `${shown} not found (HTTP ${status})`);
      }
      if (status >= 500 || status === 429 || status === 408) {
        await res.body.dump();
        throw new InputUnavailableError(field, `${shown} answered HTTP ${status}`);
      }
      if (status < 200 || status >= 300) {
        await res.body.dump();
        throw new InputError(field, `${shown} answered HTTP ${status}`);
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > opts.maxBytes) {
        res.body.destroy();
        throw new InputError(field, `${shown} is ${declared} bytes, more than MAX_INPUT_IMAGE_BYTES (${opts.maxBytes})`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      try {
        for await (const chunk of res.body) {
          total += (chunk as Buffer).length;
          if (total > opts.maxBytes) {
            res.body.destroy();
            throw new InputError(field, `${shown} is more than MAX_INPUT_IMAGE_BYTES (${opts.maxBytes}) bytes`);
          }
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        if (err instanceof InputError || signal?.aborted) throw err;
        throw new InputUnavailableError(field, `${shown}: the download broke off (${(err as Error).message})`, { cause: err });
      }
      return Buffer.concat(chunks, total);
    }
    throw new InputError(field, `${shown}: more than ${MAX_REDIRECTS} redirects`);
  }

  return { fetch: fetchOnce, close: () => agent.close() };
}
