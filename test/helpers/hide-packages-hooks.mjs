/** Module hooks of hide-packages.mjs (they run on Node's loader thread). */
let hidden = [];

/** The package a bare specifier names: `tsx/esm/api` → `tsx`, `@aws-sdk/x/y` → `@aws-sdk/x`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Whether `specifier`, asked for by `parent` (a path or URL), is one of the hidden packages. */
export function hiddenPackage(names, specifier, parent) {
  if (!parent || parent.includes('/node_modules/')) return false;
  if (/^(?:\.|\/|[a-z]+:)/i.test(specifier)) return false;
  return names.includes(packageOf(specifier));
}

export function initialize(data) {
  hidden = data?.hidden ?? [];
}

export async function resolve(specifier, context, next) {
  if (hiddenPackage(hidden, specifier, context.parentURL)) {
    throw Object.assign(new Error(`Cannot find package '${packageOf(specifier)}' imported from ${context.parentURL}`), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}
