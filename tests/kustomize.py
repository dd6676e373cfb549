"""A small kustomize renderer for the tests, for machines without kubectl.

It covers what deploy/k8s uses: resources (files and folders), components, patches
(strategic merge by kind and name: maps merge, null deletes a key, lists of named
items merge by name, other lists are replaced), labels (metadata only) and namespace.
Where kubectl exists, the tests check that it renders exactly what `kubectl kustomize` does.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "IngressClass", "CustomResourceDefinition", "PriorityClass"}
KNOWN_FIELDS = {"apiVersion", "kind", "resources", "components", "patches", "labels", "namespace"}


def _load(folder: Path) -> dict:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text()) or {}
    unknown = set(data) - KNOWN_FIELDS
    if unknown:
        raise ValueError(f"{folder}: this renderer does not handle {sorted(unknown)}")
    return data


def render(folder) -> list[dict]:
    folder = Path(folder)
    spec = _load(folder)
    out: list[dict] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        if path.is_dir():
            out.extend(render(path))
        else:
            out.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    for entry in spec.get("components", []):
        component = folder / entry
        comp = _load(component)
        for res in comp.get("resources", []):
            out.extend(doc for doc in yaml.safe_load_all((component / res).read_text()) if doc)
        _patch_all(out, component, comp.get("patches", []))
    _patch_all(out, folder, spec.get("patches", []))
    for label in spec.get("labels", []):
        for doc in out:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label.get("pairs", {}))
    if spec.get("namespace"):
        for doc in out:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return out


def _patch_all(docs: list[dict], folder: Path, patches: list[dict]) -> None:
    for entry in patches:
        for patch in yaml.safe_load_all((folder / entry["path"]).read_text()):
            target = [d for d in docs if d["kind"] == patch["kind"]
                      and d["metadata"]["name"] == patch["metadata"]["name"]]
            if len(target) != 1:
                raise ValueError(f"patch {entry['path']} matches {len(target)} resources")
            merged = merge(target[0], patch)
            target[0].clear()
            target[0].update(merged)


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value)
            else:
                out[key] = _without_nulls(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        out = copy.deepcopy(base)
        for item in patch:
            same = [i for i, old in enumerate(out) if old["name"] == item["name"]]
            if same:
                out[same[0]] = merge(out[same[0]], item)
            else:
                out.append(_without_nulls(item))
        return out
    return _without_nulls(copy.deepcopy(patch))


def _named(items) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
