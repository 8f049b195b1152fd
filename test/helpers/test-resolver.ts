/** DNS for tests, injected at the resolver layer: made-up names answer as told, every other name goes to the system's DNS. */
import { lookup } from 'node:dns/promises';
import type { HostResolver } from '../../src/shared/address-policy.js';
import { TEST_NAMES } from './https-server.js';

type Answer = { address: string; family: number }[];

/**
 * `TEST_NAMES` (`images.example.test`, `hooks.example.test`) resolve to 127.0.0.1; `extra`
 * adds names (an answer, or a function of how many times that name was asked, from 1);
 * `localhost` and the rest go to the system resolver. `asked` counts lookups per name.
 */
export function testResolver(extra: Record<string, Answer | ((nth: number) => Answer)> = {}): HostResolver & { asked: Map<string, number> } {
  const asked = new Map<string, number>();
  const resolver = async (host: string): Promise<Answer> => {
    const nth = (asked.get(host) ?? 0) + 1;
    asked.set(host, nth);
    const a = extra[host];
    if (a) return typeof a === 'function' ? a(nth) : a;
    if ((TEST_NAMES as readonly string[]).includes(host)) return [{ address: '127.0.0.1', family: 4 }];
    return lookup(host, { all: true });
  };
  return Object.assign(resolver, { asked });
}
