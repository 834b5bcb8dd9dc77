#!/usr/bin/env python3
"""Offline validation of Kubernetes manifests against the API types of the official Python client
(`pip install kubernetes`; its models are generated from the Kubernetes OpenAPI schema).

Every key must be a field of its type (camelCase, as in YAML), every value of the field's type, and
required fields present. Needs no cluster. Exit 0 valid, 1 invalid, 2 cannot validate.

    python3 docs/k8s/validate.py docs/k8s/indexed-job.yaml
"""
import re
import sys

try:
    import yaml
    import kubernetes
    from kubernetes import client
except ImportError as e:  # pragma: no cover
    print(f"cannot validate: {e} (pip install kubernetes pyyaml)", file=sys.stderr)
    sys.exit(2)

PRIMITIVE = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
errors = []


def check(value, typ, path):
    if typ in PRIMITIVE:
        if typ == "int" and isinstance(value, bool):
            errors.append(f"{path}: expected int, got bool")
        elif not isinstance(value, PRIMITIVE[typ]):
            errors.append(f"{path}: expected {typ}, got {type(value).__name__}")
        return
    m = re.fullmatch(r"[lL]ist\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, v in enumerate(value):
            check(v, m.group(1), f"{path}[{i}]")
        return
    m = re.fullmatch(r"[dD]ict[(\[]str, (.+)[)\]]", typ)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            check(v, m.group(1), f"{path}.{k}")
        return
    cls = getattr(client, typ, None)
    if cls is None:
        errors.append(f"{path}: unknown type {typ}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({typ})")
        return
    by_json = {j: p for p, j in cls.attribute_map.items()}
    for k, v in value.items():
        if k not in by_json:
            errors.append(f"{path}.{k}: not a field of {typ}")
            continue
        check(v, cls.openapi_types[by_json[k]], f"{path}.{k}")
    # Required fields (the models are pydantic models generated from the OpenAPI schema).
    fields = getattr(cls, "model_fields", {})
    for p, j in cls.attribute_map.items():
        f = fields.get(p)
        if j not in value and f is not None and f.is_required():
            errors.append(f"{path}: required field {j} ({typ}) is missing")


KINDS = {("batch/v1", "Job"): "V1Job", ("v1", "ConfigMap"): "V1ConfigMap"}


def main(files):
    n = 0
    for f in files:
        with open(f) as fh:
            for i, doc in enumerate(yaml.safe_load_all(fh)):
                if doc is None:
                    continue
                key = (doc.get("apiVersion"), doc.get("kind"))
                if key not in KINDS:
                    errors.append(f"{f}#{i}: unsupported kind {key}")
                    continue
                check(doc, KINDS[key], f"{f}#{i}")
                n += 1
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{n} document(s) checked against kubernetes-client {kubernetes.__version__}: "
          f"{'valid' if not errors else f'{len(errors)} error(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
