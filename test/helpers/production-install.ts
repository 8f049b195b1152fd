import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A production install (`npm ci --omit=dev`, the Docker image) without installing one:
 * child processes whose imports of the development packages fail as they would there
 * (see hide-packages.mjs).
 */
export const REPO_DIR = fileURLToPath(new URL('../../', import.meta.url));
export const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  exports: Record<string, { types: string; import: string }>;
};
/** What a production install leaves out: every devDependency, and these four by name (issue 12). */
export const DEV_ONLY = [...new Set(['s3rver', 'pngjs', 'jpeg-js', 'tsx', ...Object.keys(PACKAGE.devDependencies)])];
/** tsx's loader by absolute URL (to run the sources), and the hiding hooks. */
export const TSX = import.meta.resolve('tsx');
export const HIDE_PACKAGES = new URL('./hide-packages.mjs', import.meta.url).href;

export interface NodeRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node --import HIDE_PACKAGES ...args` in `cwd` (the repo by default), with only PATH and `env` set; at most 60 s. */
export function nodeWithoutDevPackages(args: string[], opts: { env?: Record<string, string>; cwd?: string; hidden?: string[] } = {}): Promise<NodeRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', HIDE_PACKAGES, ...args],
      {
        cwd: opts.cwd ?? REPO_DIR,
        timeout: 60_000,
        env: { PATH: process.env.PATH ?? '', FLUXQ_HIDE_PACKAGES: (opts.hidden ?? DEV_ONLY).join(','), ...opts.env },
      },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) || 1 : 0, stdout, stderr }),
    );
  });
}
