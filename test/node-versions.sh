#!/bin/sh
# Run the field tests — webhook receivers and input URLs reached through host *names*,
# which broke on Node 20 alone once — under every other Node major the README claims
# (22 and 24; the main run is on the machine's Node 20). Each binary comes from the npm
# registry package node-linux-<arch>@VERSION, which ships it inside its tarball (bin/node;
# no postinstall, no download from nodejs.org), unpacked once into a cache directory.
#
#   test/node-versions.sh                 # fetch if needed, then run on each version
#   test/node-versions.sh --fetch-only    # what test/setup.sh calls
#   FLUXQ_NODE_VERSIONS="22.23.3" test/node-versions.sh
#   NODE_ALT_BIN=/path/to/node test/node-versions.sh   # one binary you already have
#
# Each test file starts its own redis-server (FLUXQ_TEST_REDIS_URL is unset on purpose).
set -eu
cd "$(dirname "$0")/.."

VERSIONS="${FLUXQ_NODE_VERSIONS:-22.23.3 24.22.3}"
case "$(uname -m)" in
  x86_64 | amd64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "node-versions: no node-linux package for $(uname -m); set NODE_ALT_BIN" >&2; exit 2 ;;
esac

# The binary of one version, fetched into the cache when missing.
node_bin() {
  dir="${NODE_ALT_CACHE:-${TMPDIR:-/tmp}}/fluxq-node-linux-$ARCH-$1"
  if [ ! -x "$dir/package/bin/node" ]; then
    echo "node-versions: fetching node-linux-$ARCH@$1 from the npm registry" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-$ARCH@$1" >/dev/null && tar xzf "node-linux-$ARCH-$1.tgz" && rm -f "node-linux-$ARCH-$1.tgz")
  fi
  echo "$dir/package/bin/node"
}

if [ -n "${NODE_ALT_BIN:-}" ]; then
  BINS="$NODE_ALT_BIN"
else
  BINS=""
  for v in $VERSIONS; do BINS="$BINS $(node_bin "$v")"; done
fi
[ "${1:-}" = "--fetch-only" ] && exit 0

for bin in $BINS; do
  echo "node-versions: the field tests on Node $("$bin" --version) ($bin)" >&2
  env -u FLUXQ_TEST_REDIS_URL AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
    "$bin" --import tsx --import ./test/helpers/exit-watch.ts --test --test-concurrency=1 --test-reporter=spec \
    test/unit/pinned-agent.test.ts \
    test/unit/redact-url.test.ts \
    test/integration/webhooks.test.ts \
    test/integration/input-images.test.ts \
    test/integration/url-redaction.test.ts
done
