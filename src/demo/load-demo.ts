import { CliError, EXIT } from '../shared/exit-codes.js';
import type { runDemo } from './demo.js';

/**
 * The package a failed import could not find, when it is a package (a bare name, not a
 * file of fluxq's own): ESM's `Cannot find package 'x'` and require's `Cannot find module 'x'`.
 */
export function missingPackage(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(err instanceof Error ? err.message : '')?.[1];
  if (name === undefined || /^(?:\.|\/|[a-z]+:)/i.test(name)) return undefined;
  return name;
}

/**
 * The demo module, loaded only when `fluxq demo` runs: it brings the fake upstream and
 * s3rver, whose packages (s3rver, pngjs, jpeg-js) are development dependencies. In a
 * production install (`npm ci --omit=dev`, the Docker image) they are absent, and this
 * says so in one line instead of a stack trace.
 */
export async function loadDemo(): Promise<typeof runDemo> {
  try {
    return (await import('./demo.js')).runDemo;
  } catch (err) {
    const name = missingPackage(err);
    if (name === undefined) throw err;
    throw new CliError(
      `\`fluxq demo\` needs the development install (${name} is missing: production installs leave out development dependencies); in a clone of fluxq run \`npm ci\`, then \`npm run demo\``,
      EXIT.runtime,
    );
  }
}
