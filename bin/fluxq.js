#!/usr/bin/env node
// The `fluxq` command. Runs the compiled build when there is one (`npm run build`; the
// published package and the Docker image ship it), otherwise the TypeScript sources
// through tsx, a development dependency, so a fresh clone works after `npm ci`.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    process.stderr.write('fluxq: there is no build (dist/cli.js) and tsx, which runs the TypeScript sources, is not installed: run `npm run build` (in a clone, after `npm ci`)\n');
    process.exit(1);
  }
  tsx.register();
  await import(new URL('../src/cli.ts', import.meta.url).href);
}
