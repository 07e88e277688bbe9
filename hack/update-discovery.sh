#!/usr/bin/env bash
# update-discovery.sh copies kube-apiserver's discovery documents for the API
# versions it serves by default (every non-alpha, non-beta version) from the
# pinned k8s.io/kubernetes module into apiserver/registry/discovery. The
# registry reads resource names, kinds, scopes, verbs, short names and
# categories from them, so they track the pin. Run after hack/update-pin.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
src="$(go env GOMODCACHE)/k8s.io/kubernetes@${version}/api/discovery"
dst=apiserver/registry/discovery
rm -f "$dst"/*.json
cp "$src/api.json" "$src/apis.json" "$src/api__v1.json" "$dst/"
for f in "$src"/apis__*__v[0-9].json "$src"/apis__*__v[0-9][0-9].json; do
  [ -e "$f" ] && cp "$f" "$dst/"
done
chmod 644 "$dst"/*.json
echo "copied $(ls "$dst" | wc -l) discovery documents from k8s.io/kubernetes ${version}"
