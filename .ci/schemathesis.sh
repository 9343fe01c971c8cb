#!/usr/bin/env bash
# Checks the running server against its own OpenAPI document with schemathesis (PyPI): no 5xx, no
# answer that breaks the documented schema, status code or content type. Starts the debug build on free
# ports with a throwaway data directory and stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/chathook"
dir=$(mktemp -d)
key="schemathesis-admin-key"
printf 'admin_key = "%s"\n' "$key" > "$dir/chathook.toml"
read -r api ws < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
"$bin" --config "$dir/chathook.toml" --data-dir "$dir/data" \
  --api-addr "127.0.0.1:$api" --ws-addr "127.0.0.1:$ws" >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$api/health" 2>/dev/null && break
  sleep 0.1
done
st run "http://127.0.0.1:$api/openapi.json" -H "token: $key" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples 30 --generation-deterministic --request-timeout 10
