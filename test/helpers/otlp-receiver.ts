/**
 * An in-process OTLP/HTTP traces receiver for tests: `POST /v1/traces` in `http/protobuf`
 * or `http/json`, each decoded into the same plain spans. The protobuf side reads just the
 * fields of opentelemetry-proto's ExportTraceServiceRequest the tests look at (a wire-format
 * reader, not generated code: no protobuf library is a dependency). Bound to 127.0.0.1.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export type AttributeValue = string | number | boolean | AttributeValue[] | undefined;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, AttributeValue>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  /** The resource's `service.name`. */
  service: string;
  /** How it arrived. */
  protocol: 'http/protobuf' | 'http/json';
}

export interface OtlpReceiver {
  /** The base URL, for OTEL_EXPORTER_OTLP_ENDPOINT (the exporters append `/v1/traces`). */
  url: string;
  spans: ReceivedSpan[];
  /** Requests that could not be decoded (a test asserts there are none). */
  errors: string[];
  close(): Promise<void>;
}

// ---- protobuf wire format (proto3): varint, 64-bit, length-delimited, 32-bit ----

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error('truncated varint');
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new Error('varint too long');
  }
  bytes(): Buffer {
    const n = Number(this.varint());
    if (this.pos + n > this.buf.length) throw new Error('truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  fixed64(): Buffer {
    const out = this.buf.subarray(this.pos, this.pos + 8);
    this.pos += 8;
    return out;
  }
  /** Every field of a message: [field number, wire type, value]. */
  static fields(buf: Buffer): [number, number, bigint | Buffer][] {
    const r = new Reader(buf);
    const out: [number, number, bigint | Buffer][] = [];
    while (!r.done) {
      const tag = Number(r.varint());
      const field = tag >>> 3;
      const wire = tag & 7;
      if (wire === 0) out.push([field, wire, r.varint()]);
      else if (wire === 1) out.push([field, wire, r.fixed64()]);
      else if (wire === 2) out.push([field, wire, r.bytes()]);
      else if (wire === 5) {
        out.push([field, wire, r.buf.subarray(r.pos, r.pos + 4)]);
        r.pos += 4;
      } else throw new Error(`unsupported wire type ${wire}`);
    }
    return out;
  }
}

const asBuf = (v: bigint | Buffer): Buffer => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));
const asInt = (v: bigint | Buffer): number => (typeof v === 'bigint' ? Number(BigInt.asIntN(64, v)) : 0);

/** opentelemetry.proto.common.v1.AnyValue */
function pbAnyValue(buf: Buffer): AttributeValue {
  for (const [f, , v] of Reader.fields(buf)) {
    if (f === 1) return asBuf(v).toString('utf8');
    if (f === 2) return asInt(v) !== 0;
    if (f === 3) return asInt(v);
    if (f === 4) return asBuf(v).readDoubleLE(0);
    if (f === 5) return Reader.fields(asBuf(v)).filter(([g]) => g === 1).map(([, , x]) => pbAnyValue(asBuf(x)));
    if (f === 7) return asBuf(v).toString('hex');
  }
  return undefined;
}

/** repeated opentelemetry.proto.common.v1.KeyValue */
function pbKeyValue(buf: Buffer): [string, AttributeValue] {
  let key = '';
  let value: AttributeValue;
  for (const [f, , v] of Reader.fields(buf)) {
    if (f === 1) key = asBuf(v).toString('utf8');
    if (f === 2) value = pbAnyValue(asBuf(v));
  }
  return [key, value];
}

function pbSpan(buf: Buffer, service: string): ReceivedSpan {
  const s: ReceivedSpan = { traceId: '', spanId: '', parentSpanId: '', name: '', kind: 0, attributes: {}, statusCode: 0, statusMessage: '', service, protocol: 'http/protobuf' };
  for (const [f, , v] of Reader.fields(buf)) {
    if (f === 1) s.traceId = asBuf(v).toString('hex');
    else if (f === 2) s.spanId = asBuf(v).toString('hex');
    else if (f === 4) s.parentSpanId = asBuf(v).toString('hex');
    else if (f === 5) s.name = asBuf(v).toString('utf8');
    else if (f === 6) s.kind = asInt(v);
    else if (f === 9) {
      const [k, val] = pbKeyValue(asBuf(v));
      s.attributes[k] = val;
    } else if (f === 15) {
      for (const [g, , w] of Reader.fields(asBuf(v))) {
        if (g === 2) s.statusMessage = asBuf(w).toString('utf8');
        if (g === 3) s.statusCode = asInt(w);
      }
    }
  }
  return s;
}

/** opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest */
export function decodeProtobufTraces(body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const [f, , rs] of Reader.fields(body)) {
    if (f !== 1) continue;
    let service = '';
    const scopeSpans: Buffer[] = [];
    for (const [g, , v] of Reader.fields(asBuf(rs))) {
      if (g === 1) {
        for (const [h, , kv] of Reader.fields(asBuf(v))) {
          if (h !== 1) continue;
          const [k, val] = pbKeyValue(asBuf(kv));
          if (k === 'service.name') service = String(val);
        }
      } else if (g === 2) scopeSpans.push(asBuf(v));
    }
    for (const ss of scopeSpans) for (const [g, , v] of Reader.fields(ss)) if (g === 2) spans.push(pbSpan(asBuf(v), service));
  }
  return spans;
}

// ---- OTLP/JSON ----

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
  bytesValue?: string;
}
interface JsonKeyValue {
  key: string;
  value?: JsonAnyValue;
}

function jsonAnyValue(v: JsonAnyValue | undefined): AttributeValue {
  if (!v) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(jsonAnyValue);
  if (v.bytesValue !== undefined) return Buffer.from(v.bytesValue, 'base64').toString('hex');
  return undefined;
}

/** OTLP/JSON: ids are hex strings (the spec's one departure from proto3 JSON), enums numbers. */
export function decodeJsonTraces(body: Buffer): ReceivedSpan[] {
  const req = JSON.parse(body.toString('utf8')) as {
    resourceSpans?: {
      resource?: { attributes?: JsonKeyValue[] };
      scopeSpans?: {
        spans?: {
          traceId: string;
          spanId: string;
          parentSpanId?: string;
          name: string;
          kind?: number;
          attributes?: JsonKeyValue[];
          status?: { code?: number; message?: string };
        }[];
      }[];
    }[];
  };
  const spans: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const service = String(jsonAnyValue(rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value) ?? '');
    for (const ss of rs.scopeSpans ?? []) {
      for (const sp of ss.spans ?? []) {
        spans.push({
          traceId: sp.traceId,
          spanId: sp.spanId,
          parentSpanId: sp.parentSpanId ?? '',
          name: sp.name,
          kind: sp.kind ?? 0,
          attributes: Object.fromEntries((sp.attributes ?? []).map((a) => [a.key, jsonAnyValue(a.value)])),
          statusCode: sp.status?.code ?? 0,
          statusMessage: sp.status?.message ?? '',
          service,
          protocol: 'http/json',
        });
      }
    }
  }
  return spans;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const r: OtlpReceiver = { url: '', spans: [], errors: [], close: async () => undefined };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 32 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      const type = String(req.headers['content-type'] ?? '');
      const body = Buffer.concat(chunks);
      try {
        if (req.method !== 'POST' || req.url !== '/v1/traces') throw new Error(`unexpected ${req.method} ${req.url}`);
        if (type.startsWith('application/x-protobuf')) r.spans.push(...decodeProtobufTraces(body));
        else if (type.startsWith('application/json')) r.spans.push(...decodeJsonTraces(body));
        else throw new Error(`unexpected content-type ${type}`);
      } catch (err) {
        r.errors.push((err as Error).message);
        res.writeHead(400).end();
        return;
      }
      // An empty ExportTraceServiceResponse: no bytes in protobuf, {} in JSON.
      if (type.startsWith('application/json')) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  r.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };
  return r;
}
