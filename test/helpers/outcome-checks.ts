/**
 * Checks of what a run left behind, shared by the tests and the soak's audit
 * (bench/soak-audit.ts): each takes data already read (events, the bucket listing, a
 * downloaded object, a batch's status, a manifest) and returns what is wrong, so a test
 * asserts the list is empty and the audit counts it.
 */
import type { BatchStatus } from '../../src/producer/batch-status.js';

export type FinalState = 'completed' | 'failed' | 'cancelled';

/** A job as the checks see it: its final state (undefined while unfinished), its images, what it counts as possibly billed. */
export interface JobOutcome {
  id: string;
  final: FinalState | undefined;
  images?: readonly { key: string; sha256: string }[] | undefined;
  possiblyBilled?: number | undefined;
}

// ---------------------------------------------------------------- one final event per job

export interface FinalEventAudit {
  /** Jobs with no, one and more than one final event (job.completed + job.failed). */
  zero: number;
  one: number;
  many: number;
  /** Jobs whose single final event is not their final state. */
  wrongType: number;
  /** Completed or failed jobs with no final event. */
  missing: number;
  /** Final events of jobs not in the list. */
  foreign: number;
  /** A completed or failed job without exactly one final event of its state, or another job with one. */
  violations: string[];
}

/** Every completed or failed job has exactly one final event, of its state; no other job has any. */
export function auditFinalEvents(events: readonly { type: string; data: unknown }[], jobs: readonly Pick<JobOutcome, 'id' | 'final'>[]): FinalEventAudit {
  const known = new Set(jobs.map((j) => j.id));
  const byJob = new Map<string, { completed: number; failed: number }>();
  let foreign = 0;
  for (const e of events) {
    if (e.type !== 'job.completed' && e.type !== 'job.failed') continue;
    const id = (e.data as { jobId: string }).jobId;
    if (!known.has(id)) {
      foreign++;
      continue;
    }
    const c = byJob.get(id) ?? { completed: 0, failed: 0 };
    if (e.type === 'job.completed') c.completed++;
    else c.failed++;
    byJob.set(id, c);
  }
  const out: FinalEventAudit = { zero: 0, one: 0, many: 0, wrongType: 0, missing: 0, foreign, violations: [] };
  for (const j of jobs) {
    const c = byJob.get(j.id) ?? { completed: 0, failed: 0 };
    const n = c.completed + c.failed;
    if (n === 0) out.zero++;
    else if (n === 1) out.one++;
    else out.many++;
    const owesOne = j.final === 'completed' || j.final === 'failed';
    const matches = j.final === 'completed' ? c.completed === 1 : j.final === 'failed' ? c.failed === 1 : false;
    if (n === 1 && !matches) out.wrongType++;
    if (owesOne && n === 0) out.missing++;
    if (owesOne ? n !== 1 || !matches : n > 0) out.violations.push(`${j.id}: final ${j.final ?? 'none'}, events ${JSON.stringify(c)}`);
  }
  return out;
}

// ---------------------------------------------------------------- stored bytes are a served image

/**
 * A completed job's stored image against what the upstream served for its prompt
 * (`servedSha256` of its calls at the fake): one image in the result, the object's bytes
 * (their sha256) are one the upstream served, and the result and the object's metadata
 * say the same sha256 and job id. Returns what differs.
 */
export function storedImageProblems(job: Pick<JobOutcome, 'id' | 'images'>, stored: { sha256: string; metadata: Record<string, string> | undefined }, served: readonly string[]): string[] {
  const img = job.images?.[0];
  return [
    served.includes(stored.sha256) ? '' : 'bytes are not what the fake served for this prompt',
    img?.sha256 === stored.sha256 ? '' : 'sha256 differs from the job result',
    stored.metadata?.sha256 === stored.sha256 ? '' : 'sha256 metadata differs',
    stored.metadata?.['job-id'] === job.id ? '' : 'job-id metadata differs',
    (job.images?.length ?? 0) === 1 ? '' : `${job.images?.length ?? 0} images in the result`,
  ].filter(Boolean);
}

// ---------------------------------------------------------------- exactly its images in the bucket

export interface ObjectAudit {
  /** Objects no job owns (manifests excluded); `jobId` from the key's folder when it has one. */
  orphans: { key: string; jobId: string | undefined; outsidePrefix: boolean }[];
  /** Jobs with objects in more than one folder (`{prefix}/{batch}/{job}/`). */
  multiFolder: { id: string; folders: string[] }[];
  /** Owned keys not in the listing. */
  missing: string[];
}

/**
 * The bucket listing against the images the jobs own (`owned`: key → job id): nothing
 * extra (an orphan), nothing missing, no job in two folders. Keys under `keyPrefix`;
 * `manifests` (batch manifests) are neither orphans nor images.
 */
export function auditObjects(listed: readonly string[], owned: ReadonlyMap<string, string>, opts: { keyPrefix: string; manifests?: ReadonlySet<string> }): ObjectAudit {
  const out: ObjectAudit = { orphans: [], multiFolder: [], missing: [] };
  const folders = new Map<string, Set<string>>();
  for (const key of listed) {
    if (opts.manifests?.has(key)) continue;
    if (!key.startsWith(`${opts.keyPrefix}/`)) {
      out.orphans.push({ key, jobId: undefined, outsidePrefix: true });
      continue;
    }
    const parts = key.split('/');
    const jobId = parts.length >= 4 ? parts[parts.length - 2] : undefined;
    if (jobId) folders.set(jobId, (folders.get(jobId) ?? new Set()).add(parts.slice(0, -1).join('/')));
    if (!owned.has(key)) out.orphans.push({ key, jobId, outsidePrefix: false });
  }
  out.multiFolder = [...folders.entries()].filter(([, f]) => f.size > 1).map(([id, f]) => ({ id, folders: [...f] }));
  const present = new Set(listed);
  out.missing = [...owned.keys()].filter((k) => !present.has(k));
  return out;
}

/** key → job id of every image the jobs' results name. */
export function ownedImages(jobs: readonly Pick<JobOutcome, 'id' | 'images'>[]): Map<string, string> {
  const owned = new Map<string, string>();
  for (const j of jobs) for (const img of j.images ?? []) owned.set(img.key, j.id);
  return owned;
}

// ---------------------------------------------------------------- batch counts, batch.completed, manifest

export interface BatchTruth {
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
  open: number;
  possibly_billed: number;
}

/** A batch's counts from its jobs' own final states. */
export function batchTruth(jobs: readonly Pick<JobOutcome, 'final' | 'possiblyBilled'>[]): BatchTruth {
  return {
    total: jobs.length,
    completed: jobs.filter((j) => j.final === 'completed').length,
    failed: jobs.filter((j) => j.final === 'failed').length,
    cancelled: jobs.filter((j) => j.final === 'cancelled').length,
    open: jobs.filter((j) => !j.final).length,
    possibly_billed: jobs.reduce((n, j) => n + (j.possiblyBilled ?? 0), 0),
  };
}

/**
 * `getBatch` against the truth (every count, `state` completed exactly when nothing is
 * open) and the batch's `batch.completed` events: one once nothing is open, none before.
 */
export function batchStatusViolations(batchId: string, truth: BatchTruth, status: BatchStatus | undefined, batchCompletedEvents: number): string[] {
  const out: string[] = [];
  if (status) {
    const theirs: BatchTruth = {
      total: status.total,
      completed: status.counts.completed,
      failed: status.counts.failed,
      cancelled: status.counts.cancelled,
      open: status.counts.waiting + status.counts.active + status.counts.delayed,
      possibly_billed: status.possibly_billed,
    };
    for (const k of Object.keys(truth) as (keyof BatchTruth)[]) if (truth[k] !== theirs[k]) out.push(`${batchId}: ${k} getBatch=${theirs[k]} true=${truth[k]}`);
    if ((status.state === 'completed') !== (truth.open === 0)) out.push(`${batchId}: state ${status.state} but ${truth.open} open`);
  } else out.push(`${batchId}: unknown batch`);
  if (truth.open === 0 && batchCompletedEvents !== 1) out.push(`${batchId}: ${batchCompletedEvents} batch.completed events (expected 1)`);
  if (truth.open > 0 && batchCompletedEvents !== 0) out.push(`${batchId}: ${batchCompletedEvents} batch.completed events while ${truth.open} jobs are open`);
  return out;
}

/** Count `batch.completed` events per batch id. */
export function batchCompletedCounts(events: readonly { type: string; data: unknown }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of events) {
    if (e.type !== 'batch.completed') continue;
    const b = (e.data as { batchId: string }).batchId;
    out.set(b, (out.get(b) ?? 0) + 1);
  }
  return out;
}

/** A batch's manifest (JSONL text) against its jobs: one line per job, each with the job's final state and (completed) its image's sha256. */
export function manifestViolations(batchId: string, text: string, jobs: readonly Pick<JobOutcome, 'id' | 'final' | 'images'>[]): { lines: number; wrong: number; violations: string[] } {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const seen = new Set<string>();
  let lines = 0;
  let wrong = 0;
  for (const l of text.split('\n').filter(Boolean)) {
    lines++;
    let m: { id: string; state: string; images: { key: string; sha256: string }[] } | undefined;
    try {
      m = JSON.parse(l) as { id: string; state: string; images: { key: string; sha256: string }[] };
    } catch {
      m = undefined;
    }
    const j = m ? byId.get(m.id) : undefined;
    if (m) seen.add(m.id);
    if (!m || !j || j.final !== m.state || (m.state === 'completed' && m.images[0]?.sha256 !== j.images?.[0]?.sha256)) wrong++;
  }
  const violations: string[] = [];
  if (lines !== jobs.length) violations.push(`${batchId}: manifest has ${lines} lines for ${jobs.length} jobs`);
  if (wrong > 0) violations.push(`${batchId}: ${wrong} manifest lines disagree with the job's final state`);
  const absent = jobs.filter((j) => !seen.has(j.id));
  if (absent.length > 0) violations.push(`${batchId}: manifest lacks ${absent.length} job(s) (e.g. ${absent[0]?.id})`);
  return { lines, wrong, violations };
}
