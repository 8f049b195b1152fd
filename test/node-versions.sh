#!/bin/sh
# Run the tests that reach webhook receivers and input URLs through host *names* under a
# second Node version (default 22; README: names must work on 20, 22 and 24 alike).
# The binary comes from the npm registry package node-linux-<arch>@VERSION, which ships
# it inside the tarball (bin/node; no postinstall, no download from nodejs.org). It is
# unpacked once into a cache directory.
#
#   test/node-versions.sh                      # Node 22.23.3
#   NODE_ALT_VERSION=24.x.y test/node-versions.sh
#   NODE_ALT_BIN=/path/to/node test/node-versions.sh   # a binary you already have
#
# Each test file starts its own redis-server (FLUXQ_TEST_REDIS_URL is unset on purpose).
set -eu
cd "$(dirname "$0")/.."

VERSION="${NODE_ALT_VERSION:-22.23.3}"
case "$(uname -m)" in
  x86_64 | amd64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "node-versions: no node-linux package for $(uname -m); set NODE_ALT_BIN" >&2; exit 2 ;;
esac
if [ -n "${NODE_ALT_BIN:-}" ]; then
  NODE_BIN="$NODE_ALT_BIN"
else
  DIR="${NODE_ALT_CACHE:-${TMPDIR:-/tmp}/fluxq-node-linux-$ARCH-$VERSION}"
  NODE_BIN="$DIR/package/bin/node"
  if [ ! -x "$NODE_BIN" ]; then
    mkdir -p "$DIR"
    (cd "$DIR" && npm pack --silent "node-linux-$ARCH@$VERSION" >/dev/null && tar xzf "node-linux-$ARCH-$VERSION.tgz" && rm -f "node-linux-$ARCH-$VERSION.tgz")
  fi
fi
echo "node-versions: $("$NODE_BIN" --version) ($NODE_BIN)" >&2

exec env -u FLUXQ_TEST_REDIS_URL AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
  "$NODE_BIN" --import tsx --test --test-force-exit --test-concurrency=1 --test-reporter=spec \
  test/unit/pinned-agent.test.ts \
  test/unit/redact-url.test.ts \
  test/integration/webhooks.test.ts \
  test/integration/input-images.test.ts \
  test/integration/url-redaction.test.ts
