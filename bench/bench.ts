/**
 * fluxq bench: enqueue rates, end-to-end throughput, queue overhead, CPU per image, peak
 * RSS, event-loop delay, the 4-worker scale-out and adaptive concurrency, against the
 * project's fake upstream, a private redis-server and s3rver, with a bare baseline in
 * the same run. Prints one table; `--json FILE` writes the figures too. See
 * bench/README.md for each definition; the scenarios are in bench/scenarios/, the rig
 * they share in bench/rig.ts and bench/windows.ts, the table in bench/report.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { clockTicks } from './proc-stats.js';
import { benchNotes, printTable, writeBenchJson, type Row } from './report.js';
import { prewarmFake, roundUp, sizeFor, startRig, type ProfEntry } from './rig.js';
import { autoJson, autoNotes, autoRows, autoScenario, type AutoOptions } from './scenarios/adaptive.js';
import { e2eIdeal, e2eJson, e2eNotes, e2eRows, e2eScenario, e2eWindows, type E2EOptions } from './scenarios/end-to-end.js';
import { fairJson, fairNotes, fairRows, fairScenario, fairWindows, type FairOptions } from './scenarios/fair-share.js';
import { enqueueJson, enqueueRows, enqueueScenario, type EnqueueOptions } from './scenarios/enqueue.js';
import { probeJson, probeNotes, probeRows, probeScenario, type ProbeOptions } from './scenarios/probe.js';
import { scaleJson, scaleRows, scaleScenario, type ScaleOptions } from './scenarios/scale-out.js';
import { CleanUps, median, runToExit } from './util.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    latency: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    jobs: { type: 'string' },
    'image-mp': { type: 'string', default: '1' },
    entropy: { type: 'string', default: '0.5' },
    'enqueue-jobs': { type: 'string' },
    scale: { type: 'boolean', default: false },
    'no-scale': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'stream-baseline': { type: 'boolean', default: false },
    repeat: { type: 'string' },
    json: { type: 'string' },
    'cpu-prof': { type: 'string' },
    's3-dir': { type: 'string' },
    'scale-concurrency': { type: 'string', default: '8' },
    'scale-latency': { type: 'string', default: '500' },
    'scale-mp': { type: 'string', default: '0.25' },
    auto: { type: 'boolean', default: false },
    'no-auto': { type: 'boolean', default: false },
    'no-auto-compare': { type: 'boolean', default: false },
    'auto-cap': { type: 'string', default: '24' },
    'auto-workers': { type: 'string', default: '4' },
    'auto-concurrency': { type: 'string', default: '16' },
    'auto-latency': { type: 'string', default: '500' },
    'auto-mp': { type: 'string', default: '0.0625' },
    'auto-seconds': { type: 'string' },
    'auto-compare-seconds': { type: 'string' },
    fair: { type: 'boolean', default: false },
    'no-fair': { type: 'boolean', default: false },
    'fair-jobs': { type: 'string' },
    'fair-parked': { type: 'string' },
    'fair-releases': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
  allowPositionals: false,
});

if (argv.help) {
  console.log(`npm run bench -- [--latency 200] [--concurrency 32] [--workers 1] [--jobs N] [--image-mp 1] [--entropy 0.5]
                   [--enqueue-jobs 10000] [--scale | --no-scale] [--quick] [--repeat 3] [--json FILE] [--cpu-prof DIR]
                   [--auto | --no-auto] [--no-auto-compare] [--auto-cap 24] [--auto-workers 4] [--auto-concurrency 16]
                   [--auto-latency 500] [--auto-mp 0.0625] [--auto-seconds 60] [--auto-compare-seconds 30]
                   [--fair | --no-fair] [--fair-jobs 3000] [--fair-parked 20000] [--fair-releases 2000]
BENCH_ONLY=enqueue,e2e,probe,scale,auto,fair runs a subset.`);
  process.exit(0);
}

function num(name: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (v === undefined || !Number.isFinite(n) || n < min || n > max) {
    console.error(`bench: --${name} must be a number from ${min} to ${max}, got ${v}`);
    process.exit(2);
  }
  return n;
}
const int = (name: string, v: string | undefined, min: number, max?: number) => Math.round(num(name, v, min, max));

const QUICK = argv.quick;
const REPEAT = int('repeat', argv.repeat ?? (QUICK ? '1' : '3'), 1, 20);
const CPU_PROF = argv['cpu-prof'] ? resolve(argv['cpu-prof']) : undefined;
const S3_DIR = argv['s3-dir'] ? resolve(argv['s3-dir']) : undefined;
const JSON_OUT = argv.json ? resolve(argv.json) : undefined;
const IMAGE_MP = num('image-mp', argv['image-mp'], 0.004, 4);
const SIZE = sizeFor(IMAGE_MP);

const e2eOpts: E2EOptions = {
  latency: num('latency', argv.latency, 0, 600_000),
  concurrency: int('concurrency', argv.concurrency, 1, 1024),
  workers: int('workers', argv.workers, 1, 16),
  imageMp: IMAGE_MP,
  entropy: num('entropy', argv.entropy, 0, 1),
  size: SIZE,
  jobs: 0,
  repeat: REPEAT,
  /** Wall-clock budget for the repeated end-to-end pairs (fluxq + baseline) in a full run. */
  budgetS: Number(process.env.BENCH_E2E_BUDGET_S ?? (QUICK ? 60 : 130)),
  streamBaseline: argv['stream-baseline'],
};
const IDEAL = e2eIdeal(e2eOpts);
const SLOTS = e2eOpts.workers * e2eOpts.concurrency;
// ≈ 15 s (quick: 3 s) of ideal throughput, at least 600 (200), a multiple of W×C.
e2eOpts.jobs = argv.jobs !== undefined ? int('jobs', argv.jobs, 1) : roundUp(Math.max(QUICK ? 200 : 600, IDEAL * (QUICK ? 3 : 15)), SLOTS);

const enqueueOpts: EnqueueOptions = { jobs: int('enqueue-jobs', argv['enqueue-jobs'] ?? (QUICK ? '2000' : '10000'), 1), repeat: REPEAT, size: SIZE };
const probeOpts: ProbeOptions = { concurrency: e2eOpts.concurrency, latency: e2eOpts.latency, size: SIZE, seconds: QUICK ? 2 : 5 };
// The scale-out check: latency-bound on a 2-core machine (small images, few slots, long calls).
const SCALE = argv['no-scale'] ? false : argv.scale || !QUICK;
const scaleOpts: ScaleOptions = {
  concurrency: int('scale-concurrency', argv['scale-concurrency'], 1, 1024),
  latency: num('scale-latency', argv['scale-latency'], 1, 600_000),
  size: sizeFor(num('scale-mp', argv['scale-mp'], 0.004, 4)),
  rounds: QUICK ? 6 : 20,
  restoreLatency: e2eOpts.latency,
};
// The adaptive-concurrency check: a fleet of W × C slots against an account capped at CAP
// active calls (the fake answers 429 beyond it), latency-bound (small images, long calls).
const AUTO = argv['no-auto'] ? false : argv.auto || !QUICK;
const autoOpts: AutoOptions = {
  cap: int('auto-cap', argv['auto-cap'], 1, 10_000),
  workers: int('auto-workers', argv['auto-workers'], 1, 16),
  concurrency: int('auto-concurrency', argv['auto-concurrency'], 1, 1024),
  latency: num('auto-latency', argv['auto-latency'], 1, 600_000),
  size: sizeFor(num('auto-mp', argv['auto-mp'], 0.004, 4)),
  seconds: num('auto-seconds', argv['auto-seconds'] ?? (QUICK ? '15' : '60'), 1, 3600),
  compareSeconds: num('auto-compare-seconds', argv['auto-compare-seconds'] ?? (QUICK ? '8' : '30'), 1, 3600),
  compare: !argv['no-auto-compare'],
  restoreLatency: e2eOpts.latency,
};

// The fair-share pick-up cost (9): 1 000 open batches of 10 tenants vs one batch of one tenant.
const FAIR = argv['no-fair'] ? false : argv.fair || !QUICK;
const fairOpts: FairOptions = {
  tenants: 10,
  batches: 1000,
  parked: int('fair-parked', argv['fair-parked'] ?? (QUICK ? '5000' : '20000'), 1000),
  releases: int('fair-releases', argv['fair-releases'] ?? (QUICK ? '500' : '2000'), 1),
  concurrency: e2eOpts.concurrency,
  latency: e2eOpts.latency,
  size: sizeFor(0.0625),
  jobs: int('fair-jobs', argv['fair-jobs'] ?? (QUICK ? '1000' : '3000'), 1),
  repeat: Math.min(REPEAT, 2),
  restoreLatency: e2eOpts.latency,
};

const ONLY = new Set((process.env.BENCH_ONLY ?? 'enqueue,e2e,probe,scale,auto,fair').split(',').map((x) => x.trim()));
const T0 = Date.now();
const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
const cleanups = new CleanUps({ log, timeoutMs: 20_000, firstSignal: 'SIGTERM', signalMessage: 'cleaning up' });
const profIndex: ProfEntry[] = [];

// ---------------------------------------------------------------- run

async function main(): Promise<number> {
  if (CPU_PROF) await mkdir(CPU_PROF, { recursive: true });
  log(`rig: redis-server, s3rver (child process), fake upstream (this process); ${cpus().length} cores, CLK_TCK ${clockTicks()}`);
  const rig = await startRig({ cleanups, profIndex, log, latencyMs: e2eOpts.latency, entropy: e2eOpts.entropy, s3Dir: S3_DIR, cpuProf: CPU_PROF });
  const imageBytes = await prewarmFake(rig.fake, SIZE);
  log(`fake image ${SIZE.width}×${SIZE.height}: ${(imageBytes / 1048576).toFixed(2)} MiB decoded (entropy ${e2eOpts.entropy})`);

  const enq = ONLY.has('enqueue') ? await enqueueScenario(rig, enqueueOpts) : undefined;
  const e2e = ONLY.has('e2e') ? await e2eScenario(rig, e2eOpts) : undefined;
  const probe = ONLY.has('probe') ? await probeScenario(rig, probeOpts, e2e ? median(e2e.fluxq.map((w) => w.throughput / e2eOpts.workers)) : undefined) : undefined;
  const scale = SCALE && ONLY.has('scale') ? await scaleScenario(rig, scaleOpts) : undefined;
  // BENCH_ONLY=auto runs it in a quick run too.
  const auto = (AUTO || process.env.BENCH_ONLY !== undefined) && ONLY.has('auto') ? await autoScenario(rig, autoOpts) : undefined;
  // BENCH_ONLY=fair runs it in a quick run too.
  const fair = (FAIR || process.env.BENCH_ONLY !== undefined) && ONLY.has('fair') ? await fairScenario(rig, fairOpts) : undefined;

  const rows: Row[] = [
    ...(enq ? enqueueRows(enq, enqueueOpts) : []),
    ...(e2e ? e2eRows(e2e, e2eOpts, imageBytes) : []),
    ...(probe ? probeRows(probe, probeOpts) : []),
    ...(scale ? scaleRows(scale, scaleOpts) : []),
    ...(auto ? autoRows(auto, autoOpts) : []),
    ...(fair ? fairRows(fair, fairOpts) : []),
  ];
  const windows = [...(e2e ? e2eWindows(e2e) : []), ...(probe ? [probe.window] : []), ...(scale ? [scale.one, scale.four, scale.baseline] : []), ...(auto ? auto.runs.map((r) => r.window) : []), ...(fair ? fairWindows(fair) : [])];
  const notes = benchNotes(windows, [...(probe ? probeNotes(probe) : []), ...(auto ? autoNotes(auto, autoOpts) : []), ...(e2e ? e2eNotes(e2e) : []), ...(fair ? fairNotes(fair) : [])]);
  console.log(`\nfluxq bench — ${new Date().toISOString()} — node ${process.version}, ${cpus().length} cores${QUICK ? ' — QUICK' : ''}${CPU_PROF ? ' — with --cpu-prof (slower)' : ''}\n`);
  console.log(printTable(rows));
  console.log('');
  for (const n of notes) console.log(n);

  if (JSON_OUT) {
    const { latency, concurrency, workers, jobs, entropy } = e2eOpts;
    const head = {
      at: new Date().toISOString(),
      durationS: (Date.now() - T0) / 1000,
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, clkTck: clockTicks() },
      params: { latencyMs: latency, concurrency, workers, jobs, imageMp: IMAGE_MP, size: SIZE, entropy, enqueueJobs: enqueueOpts.jobs, repeat: REPEAT, quick: QUICK, scale: SCALE, cpuProf: CPU_PROF ?? null, s3Dir: S3_DIR ?? null },
      imageBytes,
      idealJobsPerS: IDEAL,
    };
    const sections = {
      enqueue: enq ? enqueueJson(enq) : null,
      e2e: e2e ? e2eJson(e2e, e2eOpts, imageBytes) : null,
      eventLoop: probe ? probeJson(probe) : null,
      scale: scale ? scaleJson(scale, scaleOpts) : null,
      auto: auto ? autoJson(auto, autoOpts) : null,
      fair: fair ? fairJson(fair, fairOpts) : null,
    };
    await writeBenchJson(JSON_OUT, head, sections, rows, notes);
    log(`wrote ${JSON_OUT}`);
  }
  if (CPU_PROF) log(`profiles in ${CPU_PROF} (index.json maps pid → role and windows); summarise with: npx tsx bench/profile-summary.ts ${CPU_PROF}`);
  return 0;
}

await runToExit({
  name: 'bench',
  main,
  cleanups,
  log,
  t0: T0,
  // Profiles are written as the children exit; the index must survive a failed run too.
  after: async () => {
    if (CPU_PROF) await writeFile(join(CPU_PROF, 'index.json'), `${JSON.stringify(profIndex, null, 2)}\n`).catch(() => undefined);
  },
});
