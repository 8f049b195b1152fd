/**
 * The audit of `npm run soak` (bench/soak.ts): everything is computed from the final
 * state of Redis (id records, BullMQ, batch records, the events stream), the bucket
 * (listed and downloaded directly from s3rver, not through the proxies) and two logs
 * kept by the soak process: the fake upstream's request log and the S3 proxies' log of
 * every answered request (with the time s3rver answered). See bench/SOAK.md.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import type { CallRecord } from '../src/demo/fake-flux.js';
import type { Producer } from '../src/producer/producer.js';
import { parseEventEntry } from '../src/shared/events.js';
import type { JobResult } from '../src/shared/result.js';
import { auditFinalEvents, auditObjects, batchCompletedCounts, batchStatusViolations, batchTruth, manifestViolations, ownedImages, storedImageProblems } from '../test/helpers/outcome-checks.js';
import { median, percentile, withTimeout } from './util.js';

export interface SoakJob {
  id: string;
  prompt: string;
  batch: string;
}

/** One request answered by s3rver, as seen by a slot's proxy. */
export interface S3LogEntry {
  t: number;
  slot: string;
  method: string;
  path: string;
  status: number;
}

export type ChaosKind =
  | 'kill'
  | 'spawn'
  | 'unexpected-exit'
  | 'redis-down'
  | 'redis-up'
  | 's3-down'
  | 's3-up'
  | 'burst-start'
  | 'burst-end'
  | 'enqueue'
  | 'chaos-end'
  | 'drain-end';

export interface ChaosEvent {
  t: number;
  kind: ChaosKind;
  detail: string;
}

/** One worker process of a slot (a slot is restarted with the same SPOOL_DIR and S3 proxy). */
export interface WorkerRun {
  slot: string;
  gen: number;
  pid: number;
  spawnedAt: number;
  /** getWorkersCount() reached the number of live workers. */
  registeredAt?: number;
  killedAt?: number;
  stoppedAt?: number;
  exitedAt?: number;
  exit?: number | string;
  /** Exited without being killed or stopped by the soak. */
  unexpected?: boolean;
  logFile: string;
}

export interface AuditInput {
  redis: Redis;
  s3: S3Client;
  producer: Producer;
  bucket: string;
  prefix: string;
  queueName: string;
  keyPrefix: string;
  jobs: SoakJob[];
  batches: string[];
  calls: CallRecord[];
  s3log: S3LogEntry[];
  chaos: ChaosEvent[];
  runs: WorkerRun[];
  t0: number;
  /** Epoch ms by which the audit must be done (each read is bounded by it). */
  deadline: number;
}

export interface AuditRow {
  id: string;
  check: string;
  value: string;
  expected: string;
  result: '' | 'PASS' | 'FAIL' | 'INFO';
}

export interface AuditReport {
  rows: AuditRow[];
  /** Every figure behind the rows, for --json. */
  data: Record<string, unknown>;
  /** Checks that failed (row ids and names). */
  failures: string[];
  partial: string[];
}

type Final = 'completed' | 'failed' | 'cancelled';

interface JobView {
  job: SoakJob;
  rec: Record<string, string> | undefined;
  recFinal: Final | undefined;
  bullState: string;
  bullFailedReason: string | undefined;
  bullStalled: number;
  final: Final | undefined;
  /** Why the job counts as lost, when it does. */
  lost: string | undefined;
  mismatch: string | undefined;
  result: JobResult | undefined;
  error: string | undefined;
  pb: number;
  attempts: number;
  started: number;
  settled: number;
}

const isSuccess = (c: CallRecord) => c.status === 200 && c.servedSha256.length > 0;
const fmtS = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '–' : `${(ms / 1000).toFixed(1)} s`);
const fmtMs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '–' : `${Math.round(ms)} ms`);

function dist(values: number[]): string {
  const m = new Map<number, number>();
  for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
  return [...m.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([k, n]) => `${k}:${n}`)
    .join('  ');
}

async function pool<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        out[i] = await fn(items[i] as T);
      }
    }),
  );
  return out;
}

export async function runAudit(a: AuditInput): Promise<AuditReport> {
  const rows: AuditRow[] = [];
  const failures: string[] = [];
  const partial: string[] = [];
  const data: Record<string, unknown> = {};
  const left = () => Math.max(1000, a.deadline - Date.now());
  const row = (id: string, check: string, value: string, expected = '', result: AuditRow['result'] = '') => {
    rows.push({ id, check, value, expected, result });
    if (result === 'FAIL') failures.push(`${id} ${check.trim()}`);
  };
  const check = (id: string, name: string, value: number, expected = 0, extra = '') => {
    row(id, name, `${value}${extra ? ` ${extra}` : ''}`, String(expected), value === expected ? 'PASS' : 'FAIL');
  };
  const r = a.redis;
  const idKey = (id: string) => `${a.prefix}:id:${id}`;
  const bullKey = (id: string) => `${a.prefix}:${a.queueName}:${id}`;

  // ---------------------------------------------------------------- read Redis
  const ids = a.jobs.map((j) => j.id);
  const recs = new Map<string, Record<string, string>>();
  const bullFields = new Map<string, (string | null)[]>();
  await withTimeout(
    (async () => {
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        const p = r.pipeline();
        for (const id of chunk) {
          p.hgetall(idKey(id));
          p.hmget(bullKey(id), 'failedReason', 'finishedOn', 'atm', 'ats', 'stc');
        }
        const replies = (await p.exec()) ?? [];
        chunk.forEach((id, n) => {
          const rec = replies[2 * n]?.[1] as Record<string, string> | null;
          if (rec && Object.keys(rec).length > 0) recs.set(id, rec);
          bullFields.set(id, (replies[2 * n + 1]?.[1] as (string | null)[] | null) ?? []);
        });
      }
    })(),
    left(),
    'reading id records',
  );
  const bullStates = new Map<string, string>();
  await withTimeout(
    (async () => {
      for (let i = 0; i < ids.length; i += 200) {
        const chunk = ids.slice(i, i + 200);
        const states = await Promise.all(chunk.map((id) => a.producer.queue.getJobState(id).catch(() => 'error')));
        chunk.forEach((id, n) => bullStates.set(id, states[n] ?? 'error'));
      }
    })(),
    left(),
    'reading BullMQ states',
  );

  const views: JobView[] = a.jobs.map((job) => {
    const rec = recs.get(job.id);
    const gen = rec?.gen ?? '1';
    const recFinal = rec?.state && rec.final === gen ? (rec.state as Final) : undefined;
    const bullState = bullStates.get(job.id) ?? 'error';
    const [failedReason, , , , stc] = bullFields.get(job.id) ?? [];
    const bullFinal = bullState === 'completed' || bullState === 'failed' ? (bullState as Final) : undefined;
    let lost: string | undefined;
    let mismatch: string | undefined;
    if (!rec && bullState === 'unknown') lost = 'no id record and no BullMQ job';
    else if (!recFinal && bullFinal) lost = `BullMQ says ${bullFinal} but the id record has no final state`;
    else if (!recFinal) lost = `unfinished (BullMQ: ${bullState})`;
    if (recFinal && bullFinal && bullFinal !== recFinal) mismatch = `id record ${recFinal}, BullMQ ${bullFinal}`;
    if (recFinal && ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'].includes(bullState)) mismatch = `id record ${recFinal}, BullMQ still ${bullState}`;
    let result: JobResult | undefined;
    if (recFinal === 'completed' && rec?.result) {
      try {
        result = JSON.parse(rec.result) as JobResult;
      } catch {
        mismatch = 'id record result is not JSON';
      }
    }
    return {
      job,
      rec,
      recFinal,
      bullState,
      bullFailedReason: failedReason ?? undefined,
      bullStalled: Number(stc ?? 0),
      final: recFinal ?? bullFinal,
      lost,
      mismatch,
      result,
      error: rec?.error || failedReason || undefined,
      pb: Number(rec?.pb ?? 0),
      attempts: Number(rec?.attempts ?? 0),
      started: Number(rec?.started ?? 0),
      settled: Number(rec?.settled ?? 0),
    };
  });
  const byId = new Map(views.map((v) => [v.job.id, v]));
  const completed = views.filter((v) => v.final === 'completed');
  const failed = views.filter((v) => v.final === 'failed');
  const cancelled = views.filter((v) => v.final === 'cancelled');
  const lost = views.filter((v) => v.lost);
  const mismatched = views.filter((v) => v.mismatch);

  // ---------------------------------------------------------------- jobs
  row('1', 'jobs enqueued', `${a.jobs.length} in ${a.batches.length} batches (${a.batches.join(', ')})`);
  row('2', 'completed', String(completed.length), '', 'INFO');
  row('3', 'failed', String(failed.length), '', 'INFO');
  const reasons = new Map<string, number>();
  for (const v of failed) reasons.set(v.error ?? '(no reason recorded)', (reasons.get(v.error ?? '(no reason recorded)') ?? 0) + 1);
  [...reasons.entries()]
    .sort((x, y) => y[1] - x[1])
    .forEach(([reason, n], i) => row(`3.${i + 1}`, `  ${reason.length > 150 ? `${reason.slice(0, 150)}…` : reason}`, String(n)));
  if (cancelled.length > 0) row('3c', 'cancelled', String(cancelled.length));
  const lostKinds = new Map<string, number>();
  for (const v of lost) lostKinds.set(v.lost as string, (lostKinds.get(v.lost as string) ?? 0) + 1);
  check('4', 'lost / unfinished (neither completed nor failed, or final state missing)', lost.length, 0, lost.length ? `(${[...lostKinds.entries()].map(([k, n]) => `${k}: ${n}`).join('; ')})` : '');
  check('4a', 'id record vs BullMQ state mismatches', mismatched.length, 0, mismatched.length ? `(e.g. ${mismatched[0]?.job.id}: ${mismatched[0]?.mismatch})` : '');
  data.jobs = {
    enqueued: a.jobs.length,
    completed: completed.length,
    failed: failed.length,
    cancelled: cancelled.length,
    failureReasons: Object.fromEntries(reasons),
    lost: lost.map((v) => ({ id: v.job.id, why: v.lost })),
    mismatches: mismatched.map((v) => ({ id: v.job.id, why: v.mismatch })),
    bullStates: Object.fromEntries([...new Set(views.map((v) => v.bullState))].map((s) => [s, views.filter((v) => v.bullState === s).length])),
  };

  // ---------------------------------------------------------------- upstream calls
  const byPrompt = new Map<string, CallRecord[]>();
  const promptOf = new Map(a.jobs.map((j) => [j.prompt, j.id]));
  let foreignCalls = 0;
  for (const c of a.calls) {
    if (c.prompt === undefined || !promptOf.has(c.prompt)) {
      foreignCalls++;
      continue;
    }
    const list = byPrompt.get(c.prompt) ?? [];
    list.push(c);
    byPrompt.set(c.prompt, list);
  }
  const outcomes = new Map<string, number>();
  for (const c of a.calls) outcomes.set(c.outcome, (outcomes.get(c.outcome) ?? 0) + 1);
  const callsOf = (v: JobView) => byPrompt.get(v.job.prompt) ?? [];
  row('5', 'upstream calls in total', `${a.calls.length} (${[...outcomes.entries()].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k}: ${n}`).join(', ')})`);
  row('5a', 'upstream calls per job (all answers) — calls:jobs', dist(views.map((v) => callsOf(v).length)));
  row('5b', 'calls per job without 429s — calls:jobs', dist(views.map((v) => callsOf(v).filter((c) => c.status !== 429).length)));
  row('5c', 'successful calls (200 with images) per job — calls:jobs', dist(views.map((v) => callsOf(v).filter(isSuccess).length)));
  if (foreignCalls > 0) row('5d', 'calls whose prompt is no soak job', String(foreignCalls));

  // First time each object was stored = the first 200 answer s3rver gave to its PUT.
  const puts = new Map<string, number[]>();
  const bucketPath = `/${a.bucket}/`;
  for (const e of a.s3log) {
    if (e.method !== 'PUT' || e.status !== 200 || !e.path.startsWith(bucketPath)) continue;
    const key = decodeURIComponent(e.path.slice(bucketPath.length));
    const list = puts.get(key) ?? [];
    list.push(e.t);
    puts.set(key, list);
  }
  const kills = a.chaos.filter((e) => e.kind === 'kill').map((e) => e.t);
  const intervals = (down: ChaosKind, up: ChaosKind) => {
    const out: [number, number][] = [];
    for (const d of a.chaos.filter((e) => e.kind === down)) {
      const u = a.chaos.find((e) => e.kind === up && e.t >= d.t);
      out.push([d.t, u?.t ?? Number.MAX_SAFE_INTEGER]);
    }
    return out;
  };
  const s3Down = intervals('s3-down', 's3-up');
  const redisDown = intervals('redis-down', 'redis-up');
  const overlaps = (iv: [number, number][], from: number, to: number) => iv.some(([s, e]) => s <= to && e >= from);

  const violations: { id: string; storedAt: number; calls: { at: number; endedAt: number | undefined; kind: string }[] }[] = [];
  let noPutSeen = 0;
  const multi: { id: string; successes: number; why: string[]; calls: unknown[]; storedAt: number | null }[] = [];
  const rewritten: { key: string; puts: number }[] = [];
  for (const v of completed) {
    const key = v.result?.images[0]?.key;
    const successes = callsOf(v).filter(isSuccess).sort((x, y) => x.at - y.at);
    const times = key ? puts.get(key) : undefined;
    const storedAt = times?.[0];
    if (key && times && times.length > 1) rewritten.push({ key, puts: times.length });
    if (storedAt === undefined) {
      if (successes.length > 0) noPutSeen++;
    } else {
      const late = successes.filter((c) => (c.endedAt ?? c.at) >= storedAt);
      if (late.length > 0) {
        violations.push({
          id: v.job.id,
          storedAt,
          calls: late.map((c) => ({ at: c.at, endedAt: c.endedAt, kind: c.at >= storedAt ? 'sent after the image was stored' : 'in flight when the image was stored (two runs at once)' })),
        });
      }
    }
    if (successes.length > 1) {
      const why: string[] = [];
      for (let i = 0; i + 1 < successes.length; i++) {
        const from = (successes[i] as CallRecord).endedAt ?? (successes[i] as CallRecord).at;
        const to = (successes[i + 1] as CallRecord).at;
        // The first thing that went wrong after the answer arrived is the cause.
        // A kill while the call was in flight counts too: the fake may finish writing an
        // answer into a socket whose worker is already dead.
        const callStart = (successes[i] as CallRecord).at;
        const killedInFlight = kills.some((t) => t >= callStart && t < from);
        const killed = kills.some((t) => t >= from && t <= to);
        const s3WasDown = overlaps(s3Down, from, from);
        let reason: string;
        if (to < from) reason = 'two runs at once (overlapping calls)';
        else if (killedInFlight) reason = 'worker killed while the call was in flight (the answer never reached it)';
        else if (s3WasDown && killed) reason = 'S3 down at the answer, worker killed while it held the bytes (the spool is per host)';
        else if (killed) reason = 'worker killed after the answer, before the upload landed';
        else if (overlaps(s3Down, from, to)) reason = 'S3 outage between the answer and the upload';
        else if (overlaps(redisDown, from, to)) reason = 'Redis restart between the answer and the upload';
        else reason = 'unexplained';
        why.push(reason);
      }
      multi.push({
        id: v.job.id,
        successes: successes.length,
        why,
        calls: callsOf(v).map((c) => ({ at: c.at - a.t0, endedAt: c.endedAt === undefined ? null : c.endedAt - a.t0, outcome: c.outcome })),
        storedAt: storedAt === undefined ? null : storedAt - a.t0,
      });
    }
  }
  const violationKinds = new Map<string, number>();
  for (const x of violations) for (const c of x.calls) violationKinds.set(c.kind, (violationKinds.get(c.kind) ?? 0) + 1);
  check('6', 'PAID TWICE: successful call answered at/after the job’s image was first stored', violations.length, 0, violations.length ? `jobs (${[...violationKinds.entries()].map(([k, n]) => `${n} ${k}`).join(', ')})` : 'jobs');
  const whyCount = new Map<string, number>();
  for (const m of multi) for (const w of m.why) whyCount.set(w, (whyCount.get(w) ?? 0) + 1);
  row('6a', 'jobs with >1 successful call overall (all before their image was stored)', `${multi.length}${multi.length ? ` (${[...whyCount.entries()].map(([k, n]) => `${k}: ${n}`).join('; ')})` : ''}`, 'allowed when a worker died or S3 was down between answer and upload', whyCount.has('unexplained') || whyCount.has('two runs at once (overlapping calls)') ? 'FAIL' : 'INFO');
  check('6b', 'completed jobs whose image PUT was never seen by the S3 proxies', noPutSeen);
  row('6c', 'image objects written more than once (PUT 200 ×n)', String(rewritten.length), '', 'INFO');
  data.paidOnce = { violations, multipleSuccesses: multi, rewritten, noPutSeen };

  // ---------------------------------------------------------------- objects
  const listed: { key: string; lastModified: number; size: number }[] = [];
  let listingOk = true;
  await withTimeout(
    (async () => {
      // ListObjects v1 with Marker: s3rver's v2 continuation tokens use DES, which Node 20's
      // OpenSSL 3 refuses (InternalError on every listing past 1000 keys).
      let marker: string | undefined;
      for (;;) {
        const res = await a.s3.send(new ListObjectsCommand({ Bucket: a.bucket, Marker: marker }));
        for (const o of res.Contents ?? []) if (o.Key) listed.push({ key: o.Key, lastModified: o.LastModified?.getTime() ?? 0, size: o.Size ?? 0 });
        const last = res.Contents?.at(-1)?.Key;
        if (!res.IsTruncated || !last) break;
        marker = res.NextMarker ?? last;
      }
    })(),
    left(),
    'listing the bucket',
  ).catch((err: unknown) => {
    listingOk = false;
    partial.push(`bucket listing failed: ${(err as Error).message}`);
  });
  if (!listingOk) row('8!', 'bucket listing', 'FAILED (orphan and missing-object checks are incomplete)', 'listed', 'FAIL');
  const sha = new Map<string, { sha?: string; meta?: Record<string, string>; err?: string }>();
  const toGet = completed.map((v) => v.result?.images[0]?.key).filter((k): k is string => typeof k === 'string');
  try {
    await withTimeout(
      pool(toGet, 16, async (key) => {
        try {
          const res = await a.s3.send(new GetObjectCommand({ Bucket: a.bucket, Key: key }));
          const bytes = Buffer.from((await res.Body?.transformToByteArray()) ?? []);
          sha.set(key, { sha: createHash('sha256').update(bytes).digest('hex'), meta: res.Metadata ?? {} });
        } catch (err) {
          sha.set(key, { err: (err as Error).name ?? String(err) });
        }
      }),
      left(),
      'downloading the images',
    );
  } catch (err) {
    partial.push(`objects: ${(err as Error).message} (${sha.size} of ${toGet.length} downloaded)`);
  }
  let identical = 0;
  const notIdentical: { id: string; why: string }[] = [];
  for (const v of completed) {
    const img = v.result?.images[0];
    if (!img) {
      notIdentical.push({ id: v.job.id, why: 'no image in the result' });
      continue;
    }
    const got = sha.get(img.key);
    if (!got) {
      notIdentical.push({ id: v.job.id, why: 'not downloaded (audit out of time)' });
      continue;
    }
    if (!got.sha) {
      notIdentical.push({ id: v.job.id, why: `GET failed: ${got.err}` });
      continue;
    }
    const whyNot = storedImageProblems({ id: v.job.id, images: v.result?.images }, { sha256: got.sha, metadata: got.meta }, callsOf(v).flatMap((c) => c.servedSha256));
    if (whyNot.length === 0) identical++;
    else notIdentical.push({ id: v.job.id, why: whyNot.join('; ') });
  }
  check('7', 'completed jobs whose stored image is NOT byte-identical to a served one', notIdentical.length, 0, `(${identical} of ${completed.length} identical)`);

  const manifests = new Set(a.batches.map((b) => `${a.keyPrefix}/${b}/manifest.jsonl`));
  const expected = ownedImages(completed.map((v) => ({ id: v.job.id, images: v.result?.images })));
  const { orphans: orphanKeys, multiFolder, missing: missingObjects } = auditObjects(
    listed.map((o) => o.key),
    expected,
    { keyPrefix: a.keyPrefix, manifests },
  );
  const orphans = orphanKeys.map((o) => {
    const owner = o.jobId ? byId.get(o.jobId) : undefined;
    return { key: o.key, owner: o.outsidePrefix ? 'outside the images prefix' : owner ? `job ${o.jobId} (${owner.final ?? 'not final'})` : 'no soak job' };
  });
  check('8', 'orphan objects (no completed job owns them; manifests excluded)', orphans.length, 0, orphans.length ? `(e.g. ${orphans[0]?.key}: ${orphans[0]?.owner})` : `(${listed.length} objects: ${expected.size} images + ${listed.filter((o) => manifests.has(o.key)).length} manifests)`);
  check('8a', 'jobs with more than one image folder', multiFolder.length);
  check('8b', 'completed jobs whose image object is missing', missingObjects.length);
  data.objects = { listed: listed.length, identical, notIdentical, orphans, multiFolder, missingObjects };

  // ---------------------------------------------------------------- batches
  const batchIssues: string[] = [];
  const batchData: Record<string, unknown>[] = [];
  let eventsRaw: [string, string[]][] = [];
  await withTimeout(
    (async () => {
      let start = '-';
      for (;;) {
        const chunk = (await r.xrange(`${a.prefix}:events`, start, '+', 'COUNT', 2000)) as [string, string[]][];
        eventsRaw = eventsRaw.concat(chunk);
        if (chunk.length < 2000) break;
        start = `(${chunk[chunk.length - 1]?.[0]}`;
      }
    })(),
    left(),
    'reading the events stream',
  );
  const events = eventsRaw.map((e) => parseEventEntry(e)).filter((e) => e !== undefined);
  const batchCompletedEvents = batchCompletedCounts(events);
  const outcome = (v: JobView) => ({ id: v.job.id, final: v.final, images: v.result?.images, possiblyBilled: v.pb });
  for (const b of a.batches) {
    const mine = views.filter((v) => v.job.batch === b);
    const own = batchTruth(mine.map(outcome));
    let st: Awaited<ReturnType<Producer['getBatch']>> | undefined;
    let rec: Awaited<ReturnType<Producer['batches']['get']>> | undefined;
    let unreadable = false;
    try {
      st = await withTimeout(a.producer.getBatch(b), left(), `getBatch(${b})`);
      rec = await withTimeout(a.producer.batches.get(b), left(), `batch record ${b}`);
    } catch (err) {
      unreadable = true;
      batchIssues.push(`${b}: ${(err as Error).message}`);
    }
    const emitted = batchCompletedEvents.get(b) ?? 0;
    batchIssues.push(...batchStatusViolations(b, own, st, emitted).filter((x) => !(unreadable && x === `${b}: unknown batch`)));
    if (rec && rec.finGen !== rec.emittedGen) batchIssues.push(`${b}: fin_gen ${rec.finGen} ≠ emitted_gen ${rec.emittedGen}`);
    // The manifest: one line per job, with its final state.
    let manifestLines = 0;
    let manifestWrong = 0;
    if (own.open === 0) {
      try {
        const res = await withTimeout(a.s3.send(new GetObjectCommand({ Bucket: a.bucket, Key: `${a.keyPrefix}/${b}/manifest.jsonl` })), left(), `manifest of ${b}`);
        const text = Buffer.from((await res.Body?.transformToByteArray()) ?? []).toString('utf8');
        const m = manifestViolations(b, text, mine.map(outcome));
        manifestLines = m.lines;
        manifestWrong = m.wrong;
        batchIssues.push(...m.violations);
      } catch (err) {
        batchIssues.push(`${b}: manifest unreadable (${(err as Error).name})`);
      }
    }
    const theirs = st ? { total: st.total, completed: st.counts.completed, failed: st.counts.failed, cancelled: st.counts.cancelled, open: st.counts.waiting + st.counts.active + st.counts.delayed, possibly_billed: st.possibly_billed } : undefined;
    batchData.push({ batch: b, true: own, getBatch: theirs ?? null, state: st?.state ?? null, outputMp: st?.output_mp ?? 0, costUsd: st?.cost_usd ?? 0, batchCompletedEvents: emitted, finGen: rec?.finGen, emittedGen: rec?.emittedGen, manifestLines, manifestWrong });
  }
  check('9', 'batch counts (getBatch) ≠ true final states; batch.completed ≠ 1; manifest wrong', batchIssues.length, 0, batchIssues.length ? `(${batchIssues.slice(0, 4).join('; ')}${batchIssues.length > 4 ? '; …' : ''})` : `(${a.batches.length} batches agree)`);
  data.batches = { batches: batchData, issues: batchIssues };

  // ---------------------------------------------------------------- events
  const fe = auditFinalEvents(
    events,
    views.map((v) => ({ id: v.job.id, final: v.final })),
  );
  const finalCount = completed.length + failed.length;
  row('10', 'final events per job (job.completed + job.failed): 0 / 1 / >1', `${fe.zero} / ${fe.one} / ${fe.many}`, `0 / ${finalCount} / 0${lost.length ? ` (+${lost.length} unfinished with 0)` : ''}`, fe.violations.length === 0 ? 'PASS' : 'FAIL');
  check('10a', 'jobs whose single final event does not match their final state', fe.wrongType);
  const foreignEvents = fe.foreign;
  row('10b', 'events stream', `${events.length} entries (${['job.completed', 'job.failed', 'batch.completed', 'queue.paused', 'queue.resumed', 'webhook.failed'].map((t) => `${t} ${events.filter((e) => e.type === t).length}`).join(', ')})${foreignEvents ? `, ${foreignEvents} for unknown jobs` : ''}`);
  data.events = { entries: events.length, zero: fe.zero, one: fe.one, many: fe.many, wrongType: fe.wrongType, noEventForFinal: fe.missing, examples: fe.violations.slice(0, 5) };

  // ---------------------------------------------------------------- ledger
  const stats = await withTimeout(r.hgetall(`${a.prefix}:stats`), left(), 'fleet stats');
  const pbRecords = views.reduce((n, v) => n + v.pb, 0);
  const pbBatches = batchData.reduce((n, b) => n + Number((b.getBatch as { possibly_billed?: number } | null)?.possibly_billed ?? 0), 0);
  const pbStats = Number(stats.possibly_billed ?? 0);
  const truncated = a.calls.filter((c) => c.outcome === 'truncated').length;
  const wentAway = a.calls.filter((c) => c.outcome === 'client went away' || c.outcome === 'pending').length;
  const underCounted = views.filter((v) => {
    const cs = callsOf(v);
    return v.pb < cs.filter((c) => c.outcome === 'truncated' || c.outcome === 'client went away' || c.outcome === 'pending').length;
  });
  const unsettled = views.filter((v) => v.final && v.started > v.settled);
  row('11', 'possibly_billed total: id records / batches / fleet stats', `${pbRecords} / ${pbBatches} / ${pbStats}`, 'all equal', pbRecords === pbBatches && pbRecords === pbStats ? 'PASS' : 'FAIL');
  row('11a', '  fake: truncated 200s + calls cut off by a kill', `${truncated} + ${wentAway} = ${truncated + wentAway}`, `≤ ${pbRecords}`, truncated + wentAway <= pbRecords ? 'PASS' : 'FAIL');
  check('11b', '  jobs whose possibly_billed < their ambiguous calls at the fake', underCounted.length);
  row('11c', '  final jobs with a call started but never settled (started > settled)', `${unsettled.length}${unsettled.length ? ` (${unsettled.slice(0, 5).map((v) => `${v.job.id}: started ${v.started}, settled ${v.settled}`).join('; ')})` : ''}`, '', 'INFO');
  // The ledger counts a call in the script that starts it (calls, started) and in the one
  // that settles it. Without a worker dying in between, each must match the fake's log:
  // more means a script ran twice for one call.
  const phantom = views.filter((v) => {
    const cs = callsOf(v);
    const recCalls = Number(v.rec?.calls ?? v.started);
    if (v.settled > v.started) return true;
    if (recCalls <= cs.length) return false;
    // A kill at any point of the job's life may have cut a call off between its start
    // (counted) and the request reaching the fake: the ledger then rightly counts it.
    if ((v.bullStalled ?? 0) > 0) return false;
    const from = Math.min(cs[0]?.at ?? Number.MAX_SAFE_INTEGER, Number(v.rec?.created ?? 0)) - 5000;
    const to = Number(v.rec?.finished ?? Date.now());
    return !kills.some((t) => t >= from && t <= to);
  });
  check('11e', '  jobs whose ledger counts more calls than the fake received, no worker killed meanwhile', phantom.length, 0, phantom.length ? `(${phantom.slice(0, 4).map((v) => `${v.job.id}: calls ${v.rec?.calls ?? '?'} started ${v.started} settled ${v.settled}, fake ${callsOf(v).length}`).join('; ')})` : '');
  const outMp = batchData.reduce((n, b) => n + Number((b.outputMp as number | undefined) ?? 0), 0);
  const successCalls = views.reduce((n, v) => n + callsOf(v).filter(isSuccess).length, 0);
  row('11f', '  output_mp in the batch ledgers vs successful calls at the fake (1 MP each)', `${outMp} / ${successCalls}`, '≤ (kills may lose a settle)', outMp <= successCalls ? 'PASS' : 'FAIL');
  row('11d', '  attempts per job (ledger) — attempts:jobs', dist(views.map((v) => v.attempts)));
  const detail = (v: JobView) => ({
    id: v.job.id,
    final: v.final,
    record: Object.fromEntries(Object.entries(v.rec ?? {}).filter(([k]) => k !== 'result' && k !== 'prompt')),
    bull: { state: v.bullState, stalledCounter: v.bullStalled },
    calls: callsOf(v).map((c) => ({ at: c.at - a.t0, endedAt: c.endedAt === undefined ? null : c.endedAt - a.t0, status: c.status ?? null, outcome: c.outcome })),
  });
  data.ledger = { pbRecords, pbBatches, pbStats, truncated, wentAway, underCounted: underCounted.map(detail), unsettled: unsettled.map(detail), phantom: phantom.map(detail), outMp, successCalls, stats };

  // ---------------------------------------------------------------- chaos and timing
  const at = (t: number | undefined) => (t === undefined ? '–' : `t+${((t - a.t0) / 1000).toFixed(1)}s`);
  const killEvents = a.chaos.filter((e) => e.kind === 'kill');
  row('12', 'worker SIGKILLs (and restarts)', `${killEvents.length}${killEvents.length ? ` at ${killEvents.map((e) => `${at(e.t)} ${e.detail}`).join(', ')}` : ''}`);
  const unexpected = a.runs.filter((w) => w.unexpected);
  check('12a', 'worker exits not caused by the soak', unexpected.length, 0, unexpected.length ? `(${unexpected.map((w) => `${w.slot}#${w.gen} → ${w.exit}`).join(', ')})` : '');
  const stopped = a.runs.filter((w) => w.stoppedAt !== undefined);
  const badStops = stopped.filter((w) => w.exit !== 0);
  row('12b', 'final SIGTERM: worker exit codes', stopped.map((w) => `${w.slot}#${w.gen}=${w.exit ?? 'running'}`).join(' '), 'all 0', badStops.length === 0 ? 'PASS' : 'FAIL');

  // Restarts: spawn → registered / first S3 request through its slot's proxy (= first job
  // picked up: every run starts with a bucket lookup) / first image stored.
  const restarts = a.runs.filter((w) => w.gen > 1);
  const runEnd = (w: WorkerRun) => w.killedAt ?? w.stoppedAt ?? w.exitedAt ?? Number.MAX_SAFE_INTEGER;
  const firstReq = (w: WorkerRun, after: number, pred: (e: S3LogEntry) => boolean) =>
    a.s3log.find((e) => e.slot === w.slot && e.t >= after && e.t <= runEnd(w) && pred(e))?.t;
  const restartTimes = restarts.map((w) => {
    const after = w.registeredAt ?? w.spawnedAt + 500;
    const req = firstReq(w, after, () => true);
    const put = firstReq(w, after, (e) => e.method === 'PUT' && e.status === 200 && !e.path.endsWith('manifest.jsonl'));
    return { slot: w.slot, gen: w.gen, ready: w.registeredAt ? w.registeredAt - w.spawnedAt : undefined, firstJob: req ? req - w.spawnedAt : undefined, firstStored: put ? put - w.spawnedAt : undefined };
  });
  const q = (vals: (number | undefined)[]) => {
    const v = vals.filter((x): x is number => x !== undefined);
    return v.length ? `median ${fmtS(median(v))}, max ${fmtS(Math.max(...v))}` : '–';
  };
  row('12c', 'restart → ready (registered with BullMQ)', q(restartTimes.map((x) => x.ready)));
  row('12d', 'restart → first job picked up (first S3 request)', q(restartTimes.map((x) => x.firstJob)));
  row('12e', 'restart → first image stored', q(restartTimes.map((x) => x.firstStored)));
  const neverWorked = restartTimes.filter((x, i) => x.firstStored === undefined && runEnd(restarts[i] as WorkerRun) - (restarts[i] as WorkerRun).spawnedAt > 15_000);
  check('12f', 'restarted workers that stored nothing in their first 15 s', neverWorked.length, 0, neverWorked.length ? `(${neverWorked.map((x) => `${x.slot}#${x.gen}`).join(', ')})` : '');

  // SPEC §7 Field conditions: a SIGKILLed worker's jobs run again within 20 s at the
  // default lock settings. For every call a kill cut off, the job's next sign of life: its
  // next call at the fake, or its final state (a run that found its images stored).
  const recoveries: number[] = [];
  const recoveryDetail: { jobId: string; kill: number; nextCall: number | null; firstS3: number | null; finished: number | null }[] = [];
  for (const k of killEvents.map((e) => e.t)) {
    for (const v of views) {
      const cs = callsOf(v);
      // Cut off by this kill: the job's last call before it went away, and the job was not
      // final yet (a call cut by an earlier kill is that kill's).
      const last = cs.filter((c) => c.at < k).at(-1);
      const finishedAt = v.rec?.finished ? Number(v.rec.finished) : Infinity;
      if (!last || last.outcome !== 'client went away' || finishedAt < k || killEvents.some((e) => e.t > last.at && e.t < k)) continue;
      const nextCall = cs.find((c) => c.at >= k)?.at;
      const firstS3 = a.s3log.find((e) => e.t >= k && (e.path.includes(`/${v.job.id}/`) || e.path.includes(encodeURIComponent(`/${v.job.id}/`))))?.t;
      const finished = v.rec?.finished ? Number(v.rec.finished) : undefined;
      const next = Math.min(nextCall ?? Infinity, firstS3 ?? Infinity, finished ?? Infinity);
      recoveryDetail.push({ jobId: v.job.id, kill: k - a.t0, nextCall: nextCall === undefined ? null : nextCall - a.t0, firstS3: firstS3 === undefined ? null : firstS3 - a.t0, finished: finished === undefined ? null : finished - a.t0 });
      if (Number.isFinite(next)) recoveries.push(next - k);
    }
  }
  data.recoveryDetail = recoveryDetail;
  const slowRecoveries = recoveries.filter((ms) => ms > 20_000);
  check('12g', `jobs cut off by a kill that ran again > 20 s after it (${recoveries.length} cut off; ${recoveries.length ? `median ${fmtS(median(recoveries))}, max ${fmtS(Math.max(...recoveries))}` : '–'})`, slowRecoveries.length);
  data.recoveries = recoveries;

  const rDown = a.chaos.find((e) => e.kind === 'redis-down');
  const rUp = a.chaos.find((e) => e.kind === 'redis-up');
  row('13', 'Redis restarted (AOF on, appendfsync always)', rDown ? `yes, at ${at(rDown.t)}, down ${fmtMs(rUp ? rUp.t - rDown.t : undefined)}` : 'no', 'yes', rDown && rUp ? 'PASS' : 'FAIL');
  const resumed: { slot: string; gen: number; ms: number | undefined; aliveAfterMs: number }[] = [];
  if (rDown && rUp) {
    for (const w of a.runs.filter((x) => x.spawnedAt < rDown.t && runEnd(x) > rUp.t)) {
      const aliveAfterMs = Math.min(runEnd(w), Date.now()) - rUp.t;
      // A bucket lookup (HEAD or LIST) starts every run, after the run's first Redis script.
      const t = firstReq(w, rUp.t + 250, (e) => e.method === 'HEAD' || (e.method === 'GET' && (e.path === `/${a.bucket}/` || e.path === `/${a.bucket}`)));
      resumed.push({ slot: w.slot, gen: w.gen, ms: t === undefined ? undefined : t - rUp.t, aliveAfterMs });
    }
    const stuck = resumed.filter((x) => x.ms === undefined && x.aliveAfterMs > 10_000);
    row('13a', '  workers alive across the restart: first job started after it', resumed.map((x) => `${x.slot}#${x.gen} ${x.ms === undefined ? `none (alive ${fmtS(x.aliveAfterMs)} after)` : `+${fmtMs(x.ms)}`}`).join(', ') || 'none alive', 'each resumes', stuck.length === 0 ? 'PASS' : 'FAIL');
  }
  const s3d = a.chaos.find((e) => e.kind === 's3-down');
  const s3u = a.chaos.find((e) => e.kind === 's3-up');
  row('14', 'S3 down (proxies reset every connection)', s3d ? `yes, ${at(s3d.t)} → ${at(s3u?.t)} (${fmtS(s3u ? s3u.t - s3d.t : undefined)})` : 'no', 'yes, 10 s', s3d && s3u ? 'PASS' : 'FAIL');
  const burst = a.chaos.find((e) => e.kind === 'burst-start');
  const n429 = a.calls.filter((c) => c.status === 429).length;
  row('15', '429 burst (fake.rateLimitFor(5000, "2"))', burst ? `yes, at ${at(burst.t)}: ${n429} calls answered 429` : 'no', 'yes', burst ? 'PASS' : 'FAIL');
  const enq = a.chaos.filter((e) => e.kind === 'enqueue');
  row('16', 'enqueues (producer: library enqueueBulk)', enq.map((e) => `${at(e.t)} ${e.detail}`).join('; '));
  data.chaos = { events: a.chaos, restarts: restartTimes, redisResume: resumed, runs: a.runs };
  data.timing = { restartP50: percentile(restartTimes.map((x) => x.firstStored ?? NaN), 50) };
  return { rows, data, failures, partial };
}

export function printAudit(rows: AuditRow[]): string {
  const cols = ['id', 'check', 'value', 'expected', 'result'] as const;
  type Col = (typeof cols)[number];
  const heads: Record<Col, string> = { id: '#', check: 'check', value: 'value', expected: 'expected', result: 'result' };
  const limits: Record<Col, number> = { id: 5, check: 66, value: 96, expected: 28, result: 6 };
  // Long cells wrap onto continuation lines (at spaces where possible); nothing is cut.
  const wrap = (text: string, n: number): string[] => {
    const out: string[] = [];
    let rest = text;
    while (rest.length > n) {
      let cut = rest.lastIndexOf(' ', n);
      if (cut < n / 2) cut = n;
      out.push(rest.slice(0, cut).trimEnd());
      rest = `  ${rest.slice(cut).trimStart()}`;
    }
    out.push(rest);
    return out;
  };
  const w = Object.fromEntries(cols.map((c) => [c, Math.min(limits[c], Math.max(heads[c].length, ...rows.map((r) => r[c].length)))])) as Record<Col, number>;
  const lines = (r: Record<Col, string>) => {
    const cells = cols.map((c) => wrap(r[c], w[c]));
    const height = Math.max(...cells.map((x) => x.length));
    return Array.from({ length: height }, (_, i) => `| ${cols.map((c, k) => (cells[k]?.[i] ?? '').padEnd(w[c])).join(' | ')} |`);
  };
  return [...lines(heads), `|${cols.map((c) => '-'.repeat(w[c] + 2)).join('|')}|`, ...rows.flatMap(lines)].join('\n');
}
