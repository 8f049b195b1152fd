/**
 * Poll a condition until it holds, bounded in time and in rounds; never a fixed sleep.
 * On timeout it throws with the last value seen, so a failure says what was there.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  const maxRounds = Math.ceil(timeoutMs / intervalMs) + 1;
  let last: unknown;
  for (let round = 0; round < maxRounds; round++) {
    last = await check();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}; last value: ${JSON.stringify(last)?.slice(0, 500)}`);
}
