import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactUrl } from '../../src/shared/redact-url.js';

test('redactUrl drops the query string, the fragment and user:pass@, and keeps the rest as written', () => {
  const cases: [string, string][] = [
    ['https://bucket.s3.amazonaws.com/in/cat.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=secret', 'https://bucket.s3.amazonaws.com/in/cat.png'],
    ['https://user:pass@images.example.com:8443/a/b.png?token=t#frag', 'https://images.example.com:8443/a/b.png'],
    ['http://only-user@hooks.example.com/h', 'http://hooks.example.com/h'],
    ['https://a@b:c@host.example/x', 'https://host.example/x'],
    ['https://user:pass@host.example', 'https://host.example'],
    ['https://host.example/p@th/with@signs?q=1', 'https://host.example/p@th/with@signs'],
    ['https://Images.Example.com/Cat%20One.PNG', 'https://Images.Example.com/Cat%20One.PNG'],
    ['https://host.example/#/route?x=1', 'https://host.example/'],
    ['s3://bucket/uploads/a b.png', 's3://bucket/uploads/a b.png'],
    ['https:user:pass@host.example/x?sig=s', 'https:host.example/x'],
    ['https:\\\\user:pass@host.example\\x', 'https:\\\\host.example\\x'],
    ['\u0001https://user:pass@host.example/x', 'https://host.example/x'],
    ['not a url ?secret=1', 'not a url '],
    ['', ''],
  ];
  for (const [raw, want] of cases) assert.equal(redactUrl(raw), want, raw);
  // Nothing the URL parser reads as credentials or a query survives, whatever the input.
  for (const [raw] of cases) {
    let u: URL | undefined;
    try {
      u = new URL(redactUrl(raw));
    } catch {
      continue;
    }
    assert.deepEqual([u.username, u.password, u.search, u.hash], ['', '', '', ''], raw);
  }
});
