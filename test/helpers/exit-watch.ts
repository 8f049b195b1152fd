/**
 * Preloaded into every test file's process (`--import`, see test/run.ts): a file whose
 * process is still alive FLUXQ_TEST_EXIT_WAIT_MS (default 10 s) after its last test
 * finished has leaked something that keeps Node's event loop running — a timer, a
 * socket, a server, a child process. The watch then names what is still open and ends
 * the process with exit code 1, so the runner marks that file as failed instead of
 * waiting for it forever (what `--test-force-exit` used to hide). The wait starts
 * before the file's own top-level `after` hooks run (this one is registered first), so
 * those must finish well within it.
 */
import { after } from 'node:test';

/** How many of each kind of resource this process has (`Timeout`, `TCPSocketWrap`, …). */
function countResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** What is open now that was not open at start-up: `Timeout ×1, TCPSocketWrap ×2`. */
export function describeLeaks(baseline: Map<string, number>, now: Map<string, number>): string {
  const extra: string[] = [];
  for (const [kind, n] of [...now].sort(([a], [b]) => a.localeCompare(b))) {
    const more = n - (baseline.get(kind) ?? 0);
    if (more > 0) extra.push(`${kind} ×${more}`);
  }
  return extra.length > 0 ? extra.join(', ') : 'nothing new (a handle open since start-up)';
}

const waitMs = Number(process.env.FLUXQ_TEST_EXIT_WAIT_MS ?? 10_000);
// The stdio pipes exist for the whole run: touch them so the baseline counts them.
void process.stdout.writable;
void process.stderr.writable;
const baseline = countResources();

// Only in a test file's own process (the runner marks it), never in the runner itself.
if (process.env.NODE_TEST_CONTEXT?.startsWith('child')) after(() => {
  const watch = setTimeout(() => {
    const file = process.argv[1] ?? 'this test file';
    process.stderr.write(
      `\nfluxq test: ${file} has not exited ${waitMs} ms after its last test finished; still open: ${describeLeaks(baseline, countResources())}.\n` +
        'Close it where it was opened (a t.after closer, a server.close(), clearTimeout, disconnect()).\n',
    );
    process.exit(1);
  }, waitMs);
  watch.unref();
});
