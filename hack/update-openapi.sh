#!/usr/bin/env bash
# update-openapi.sh copies kube-apiserver's OpenAPI documents for the API
# versions it serves by default from the pinned k8s.io/kubernetes module into
# apiserver/openapi/spec: the v3 document of every stable group version and
# of the discovery roots, and the v2 swagger.json without the paths (and the
# definitions only they use) of alpha and beta versions. Run after
# hack/update-pin.sh, beside hack/update-discovery.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
src="$(go env GOMODCACHE)/k8s.io/kubernetes@${version}/api/openapi-spec"
dst=apiserver/openapi/spec
rm -rf "$dst" && mkdir -p "$dst/v3"
for f in "$src"/v3/*_openapi.json; do
  name="$(basename "$f")"
  # Keep group roots (apis__GROUP_openapi.json) and stable versions (__vN_).
  if [[ "$name" =~ __v[0-9]+_openapi\.json$ || ! "$name" =~ __v[0-9] ]]; then
    cp "$f" "$dst/v3/$name"
  fi
done
# A group root without a stable version is not served by default.
for f in "$dst"/v3/apis__*_openapi.json; do
  name="$(basename "$f")"
  if [[ ! "$name" =~ __v[0-9] ]]; then
    group="${name#apis__}"; group="${group%_openapi.json}"
    compgen -G "$dst/v3/apis__${group}__v*_openapi.json" >/dev/null || rm "$f"
  fi
done
python3 - "$src/swagger.json" "$dst/swagger.json" <<'PY'
import json, re, sys
src, dst = sys.argv[1], sys.argv[2]
doc = json.load(open(src))
unstable = re.compile(r"^/apis/[^/]+/v[0-9]+(alpha|beta)[0-9]*(/|$)")
doc["paths"] = {p: v for p, v in doc["paths"].items() if not unstable.match(p)}
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
todo.extend(refs(doc["paths"]))
while todo:
    d = todo.pop()
    if d in keep or d not in defs:
        continue
    keep.add(d)
    todo.extend(refs(defs[d]))
doc["definitions"] = {k: v for k, v in defs.items() if k in keep}
json.dump(doc, open(dst, "w"), separators=(",", ":"), sort_keys=True)
PY
chmod 644 "$dst"/*.json "$dst"/v3/*.json
echo "copied $(ls "$dst/v3" | wc -l) OpenAPI v3 documents and swagger.json from k8s.io/kubernetes ${version}"
