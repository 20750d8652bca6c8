#!/usr/bin/env bash
# The official AMP validator for tests/test_amp.py, offline: the amphtml-validator package
# (npm ci) and the validator_wasm.js that next@15 bundles (the npm registry is reachable,
# cdn.ampproject.org, where the validator normally downloads it from, is not).
set -euo pipefail
cd "$(dirname "$0")"
NEXT=next@15.5.29
if [ ! -d node_modules/amphtml-validator ]; then
    npm ci --silent --no-audit --no-fund
fi
if [ ! -f validator_wasm.js ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack "$NEXT" --silent >/dev/null)
    tar -xzf "$tmp"/next-*.tgz -C "$tmp" package/dist/compiled/amphtml-validator/validator_wasm.js
    mv "$tmp"/package/dist/compiled/amphtml-validator/validator_wasm.js validator_wasm.js
    rm -rf "$tmp"
fi
