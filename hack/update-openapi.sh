#!/usr/bin/env bash
# update-openapi.sh copies, from the pinned k8s.io/kubernetes module into
# apiserver/openapi/spec, kube-apiserver's OpenAPI documents of the group
# versions discovery lists that kubesim does not serve itself yet (those of
# kube-apiserver's apiextensions and aggregator servers): their v3 documents
# and the v2 paths and definitions. Everything kubesim serves has its OpenAPI
# built at run time from k8s.io/kubernetes/pkg/generated/openapi and its
# routes, as kube-apiserver builds it. Run after hack/update-pin.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
src="$(go env GOMODCACHE)/k8s.io/kubernetes@${version}/api/openapi-spec"
dst=apiserver/openapi/spec
groups=(apiextensions.k8s.io apiregistration.k8s.io)
rm -rf "$dst" && mkdir -p "$dst/v3"
for g in "${groups[@]}"; do
  cp "$src/v3/apis__${g}__v1_openapi.json" "$dst/v3/"
done
python3 - "$src/swagger.json" "$dst/swagger.json" "${groups[@]}" <<'PY'
import json, sys
src, dst, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
doc = json.load(open(src))
prefixes = tuple("/apis/%s/v1/" % g for g in groups)
paths = {p: v for p, v in doc["paths"].items() if p.startswith(prefixes)}
defs = doc["definitions"]
keep, todo = set(), []
def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                yield v[len("#/definitions/"):]
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)
todo.extend(refs(paths))
while todo:
    d = todo.pop()
    if d in keep or d not in defs:
        continue
    keep.add(d)
    todo.extend(refs(defs[d]))
out = {"swagger": doc["swagger"], "info": doc["info"], "paths": paths,
       "definitions": {k: v for k, v in defs.items() if k in keep}}
json.dump(out, open(dst, "w"), separators=(",", ":"), sort_keys=True)
PY
chmod 644 "$dst"/*.json "$dst"/v3/*.json
echo "copied the OpenAPI of ${groups[*]} from k8s.io/kubernetes ${version}"
