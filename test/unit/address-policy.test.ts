import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveAllowed, type HostResolver } from '../../src/shared/address-policy.js';

test('resolveAllowed tells a refused host from one that does not resolve (only the latter may be retried)', async () => {
  const answers: Record<string, { address: string; family: number }[]> = {
    'public.example': [{ address: '93.184.216.34', family: 4 }],
    'mixed.example': [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }],
    'empty.example': [],
  };
  const resolver: HostResolver = async (host) => {
    const a = answers[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a;
  };
  const check = (url: string) => resolveAllowed(new URL(url), { resolver }, ['https:']);
  assert.deepEqual(await check('https://public.example/a.png'), { address: '93.184.216.34', family: 4, all: [{ address: '93.184.216.34', family: 4 }] });
  assert.deepEqual(await check('https://mixed.example/a.png'), { refused: 'host mixed.example resolves to 10.0.0.5, a private or loopback address' });
  assert.deepEqual(await check('https://127.0.0.1/a.png'), { refused: 'host 127.0.0.1 is a private or loopback address' });
  assert.deepEqual(await check('http://public.example/a.png'), { refused: 'scheme http is not allowed (https only)' });
  assert.deepEqual(await check('https://gone.example/a.png'), { unresolved: 'host gone.example does not resolve (ENOTFOUND)' });
  assert.deepEqual(await check('https://empty.example/a.png'), { unresolved: 'host empty.example does not resolve' });
});
