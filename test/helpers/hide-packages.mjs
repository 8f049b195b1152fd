/**
 * `node [--import tsx] --import test/helpers/hide-packages.mjs …` with FLUXQ_HIDE_PACKAGES=a,b,c:
 * the process behaves as a production install (`npm ci --omit=dev`) where those packages
 * are absent. Importing or requiring one of them from fluxq's own files (anything outside
 * node_modules) fails as Node fails for a missing package: ERR_MODULE_NOT_FOUND
 * (`Cannot find package 'x' …`) or MODULE_NOT_FOUND (`Cannot find module 'x'`). Packages
 * inside node_modules are left alone: what they depend on is installed with them.
 */
import Module, { register } from 'node:module';
import { hiddenPackage } from './hide-packages-hooks.mjs';

const hidden = (process.env.FLUXQ_HIDE_PACKAGES ?? '').split(',').filter(Boolean);
register(new URL('./hide-packages-hooks.mjs', import.meta.url), { data: { hidden } });

// require() (createRequire included) does not go through the ESM hooks on Node 20.
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  if (hiddenPackage(hidden, request, parent?.filename)) {
    throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
  }
  return resolveFilename.call(this, request, parent, ...rest);
};
