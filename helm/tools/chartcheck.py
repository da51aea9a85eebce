#!/usr/bin/env python3
"""Helpers of deploy/helm-check.sh, run with the check's venv (PyYAML and jsonschema).

  chartcheck.py readme CHART_DIR [--write]
      The parameter table of CHART_DIR/README.md is generated from CHART_DIR/values.yaml: one row
      per value (scalars, lists and empty maps; nested maps by their leaves), its default, and its
      description from the `# --` comment above it. Without --write: fails when the README's
      table differs (a value missing, a stale row, a changed default or description) or a value
      has no `# --` comment. With --write: rewrites the table between the markers.

  chartcheck.py split RENDERED CORE_OUT SCHEMA_DIR
      Splits `helm template` output: the documents of Kubernetes' own API groups go to CORE_OUT
      (for kubernetes-validate); custom resources (ServiceMonitor, ScaledObject, ...) are not in
      Kubernetes' schemas, so each is validated here against SCHEMA_DIR/<group>_<kind>.json, a
      subset of its CRD's schema. A custom resource without a schema file fails.
"""

import difflib
import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

BEGIN = "<!-- parameters:begin -->"
END = "<!-- parameters:end -->"
KEY_LINE = re.compile(r"^(\s*)([A-Za-z0-9_.\-/]+|\"[^\"]+\"|'[^']+'):(?:\s+(.*))?$")


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def descriptions(values_text):
    """Maps dotted paths to their `# --` descriptions, from the text of values.yaml."""
    out = {}
    stack = []  # (indent, key)
    pending = None  # description lines being collected
    skip = None  # ("list", indent) or ("block", indent): lines that belong to a value
    for raw in values_text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if skip is not None and stripped:
            kind, at = skip
            if indent > at or (kind == "list" and indent == at and stripped.startswith("-")):
                continue
            skip = None
        if not stripped:
            pending = None  # a description belongs to the key right below it
            continue
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        if stripped.startswith("-"):
            skip = ("list", indent)
            pending = None
            continue
        m = KEY_LINE.match(line)
        if not m:
            pending = None
            continue
        key = m.group(2).strip("\"'")
        value = (m.group(3) or "").strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        if pending:
            out[path] = " ".join(p for p in pending if p)
        pending = None
        stack.append((indent, key))
        if value.startswith(("|", ">")):
            skip = ("block", indent)
    return out


def leaves(node, prefix=""):
    """(path, default) of every value: scalars, lists and empty maps; maps by their leaves."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def table(chart):
    values_file = chart / "values.yaml"
    text = values_file.read_text()
    data = yaml.safe_load(text) or {}
    docs = descriptions(text)
    rows, undocumented = [], []
    for path, default in leaves(data):
        desc = docs.get(path)
        if not desc:
            undocumented.append(path)
            continue
        rows.append(f"| `{path}` | `{cell(json.dumps(default))}` | {cell(desc)} |")
    if undocumented:
        die(
            f"{values_file}: no `# --` description for: {', '.join(undocumented)}\n"
            f"  add a `# -- what it does` comment line right above each of them"
        )
    return "\n".join(["| Parameter | Default | Description |", "|---|---|---|", *rows])


def readme(args):
    chart = Path(args[0])
    write = "--write" in args[1:]
    readme_file = chart / "README.md"
    text = readme_file.read_text() if readme_file.exists() else ""
    if BEGIN not in text or END not in text:
        die(f"{readme_file}: the markers {BEGIN} and {END} around the parameter table are missing")
    head, rest = text.split(BEGIN, 1)
    current, tail = rest.split(END, 1)
    wanted = "\n" + table(chart) + "\n"
    if current == wanted:
        return
    if write:
        readme_file.write_text(head + BEGIN + wanted + END + tail)
        print(f"{readme_file}: parameter table rewritten")
        return
    have = {r.split("|")[1].strip() for r in current.strip().splitlines()[2:] if r.startswith("|")}
    want = {r.split("|")[1].strip() for r in wanted.strip().splitlines()[2:]}
    for p in sorted(want - have):
        print(f"  missing from the README: {p}")
    for p in sorted(have - want):
        print(f"  in the README but not in values.yaml: {p}")
    sys.stdout.writelines(
        difflib.unified_diff(
            current.strip().splitlines(True), wanted.strip().splitlines(True),
            "README.md", "from values.yaml", n=0,
        )
    )
    print()
    die(f"{readme_file}: the parameter table is out of date; run deploy/helm-check.sh --write-readme")


def core_group(api_version):
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return "." not in group or group.endswith(".k8s.io"), group


def split(args):
    rendered, core_out, schema_dir = Path(args[0]), Path(args[1]), Path(args[2])
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    core, failures, custom = [], [], []
    for doc in docs:
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        name = (doc.get("metadata") or {}).get("name", "?")
        is_core, group = core_group(api)
        if is_core:
            core.append(doc)
            continue
        schema_file = schema_dir / f"{group}_{kind.lower()}.json"
        custom.append(f"{kind}/{name}")
        if not schema_file.exists():
            failures.append(f"{kind}/{name} ({api}): no schema {schema_file}; add one")
            continue
        schema = json.loads(schema_file.read_text())
        validator = jsonschema.Draft7Validator(schema)
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in err.path) or "(document)"
            failures.append(f"{kind}/{name}: {where}: {err.message}")
    core_out.write_text(yaml.safe_dump_all(core, sort_keys=False))
    if custom:
        print(f"custom resources checked against {schema_dir.name}/: {', '.join(custom)}")
    if failures:
        die("\n".join(failures))


def main():
    if len(sys.argv) < 3:
        die(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    {"readme": readme, "split": split}.get(command, lambda _: die(__doc__))(args)


if __name__ == "__main__":
    main()
