#!/usr/bin/env bash
# Refresh the dashboard's vendored libraries (committed; `make run` and `make test` never need npm).
# Takes the exact versions below from the npm registry with `npm pack` and copies their built files into
# src/position_order_service/dashboard/static/vendor/, with their licences.
set -euo pipefail
cd "$(dirname "$0")/.."
HTM=3.1.1                 # htm + the Preact build it bundles (preact/standalone.module.js)
LIGHTWEIGHT_CHARTS=5.2.1  # TradingView lightweight-charts
out=src/position_order_service/dashboard/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "htm@$HTM" "lightweight-charts@$LIGHTWEIGHT_CHARTS" >/dev/null)
for t in "$tmp"/*.tgz; do mkdir -p "${t%.tgz}" && tar xzf "$t" -C "${t%.tgz}"; done
cp "$tmp/htm-$HTM/package/preact/standalone.module.js" "$out/htm-preact.module.js"
cp "$tmp/htm-$HTM/package/LICENSE" "$out/LICENSE.htm.txt"
cp "$tmp/lightweight-charts-$LIGHTWEIGHT_CHARTS/package/dist/lightweight-charts.standalone.production.mjs" \
  "$out/lightweight-charts.mjs"
cp "$tmp/lightweight-charts-$LIGHTWEIGHT_CHARTS/package/LICENSE" "$out/LICENSE.lightweight-charts.txt"
cat > "$out/VERSIONS" <<VERSIONS
htm $HTM (npm; preact/standalone.module.js: htm with Preact and its hooks) -> htm-preact.module.js
lightweight-charts $LIGHTWEIGHT_CHARTS (npm; dist/lightweight-charts.standalone.production.mjs) -> lightweight-charts.mjs
Preact, bundled in htm-preact.module.js: MIT License, Copyright (c) 2015-present Jason Miller
refreshed by scripts/vendor-dashboard.sh
VERSIONS
sha256sum "$out"/*.js "$out"/*.mjs | sed "s#$out/##" >> "$out/VERSIONS"
echo "vendored into $out:" && cat "$out/VERSIONS"
