"""Loading specs: YAML -> JSON Schema check (with line numbers) -> engine compilation.

Structure is checked here with jsonschema while the YAML nodes still know their lines;
semantics (unknown states and fields, type errors in expressions, ...) are checked by the
engine's compiler. Either way every problem is reported at once, as a :class:`SpecError`.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from dita import _engine
from dita.errors import SpecError, SpecProblem


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only ``true``/``false``. YAML 1.1 would read the key ``on:`` as True.
    A key written twice in one mapping is an error: YAML loaders keep the last one silently,
    which would drop a whole handler or assignment written above it."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for key_node, _value in node.value:
                # A merge (`<<: *anchor`) brings in keys that this mapping may override:
                # only keys written here count.
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = (key_node.tag, key_node.value)
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {key_node.value!r} twice (first on line {first[key].line + 1}); "
                        "YAML would keep only the last", key_node.start_mark)
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def packaged_spec_path() -> Path:
    """The trade-slot lifecycle shipped with DITA (``spec/kernel.yaml``)."""
    return Path(str(resources.files("dita") / "spec" / "kernel.yaml"))


@lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads((resources.files("dita") / "spec" / "fsm.schema.json").read_text())


def _node_at(root: yaml.Node, path: str) -> yaml.Node | None:
    """The deepest YAML node along a dotted path like ``states.IDLE.on.GO[0].target``."""
    node = root
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            idx = int(part[1:-1])
            if idx >= len(node.value):
                return node
            node = node.value[idx]
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node = value
                    break
            else:
                return node
        else:
            return node
    return node


def _line(root: yaml.Node | None, path: str) -> int | None:
    if root is None:
        return None
    node = _node_at(root, path)
    return node.start_mark.line + 1 if node is not None else None


def _json_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(document)"


# How many values a spec may hold once its YAML aliases are expanded. Aliases share what
# they refer to, so a few lines of nested anchors can stand for billions of values, which
# the schema check, its messages and the engine would each expand in memory. The packaged
# spec holds about 5,000.
_MAX_EXPANDED_VALUES = 1_000_000


def _check_expansion(doc, source: str) -> None:
    """Counts the values ``doc`` holds with its aliases expanded (each shared part counted
    once per use, measured once), refusing a spec beyond the limit or one that contains
    itself (``&a [*a]``), before anything expands it."""
    sizes: dict[int, int] = {}
    busy: set[int] = set()

    def size(value) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        known = sizes.get(id(value))
        if known is not None:
            return known
        if id(value) in busy:
            raise SpecError(source, [SpecProblem("(document)", "yaml_error",
                                                 "a YAML alias refers to a value that contains it: the spec would be infinite")])
        busy.add(id(value))
        items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
        total = 1
        for item in items:
            total += size(item)
            if total > _MAX_EXPANDED_VALUES:
                raise SpecError(source, [SpecProblem(
                    "(document)", "too_large",
                    f"the spec expands to more than {_MAX_EXPANDED_VALUES:,} values through its YAML aliases (*name)")])
        busy.discard(id(value))
        sizes[id(value)] = total
        return total

    size(doc)


def parse(text: str, source: str = "<spec>"):
    """Parses and schema-checks spec text; returns ``(document, yaml_root_node)``."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        doc = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise SpecError(source, [SpecProblem("(document)", "yaml_error", "the YAML nests too deeply to be read")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise SpecError(source, [SpecProblem("(document)", "yaml_error", str(exc).replace("\n", " "), line)]) from None
    if not isinstance(doc, dict):
        raise SpecError(source, [SpecProblem("(document)", "schema_error", "a spec is a mapping at the top level", 1)])
    _check_expansion(doc, source)
    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        path = _json_path(err.absolute_path)
        message = err.message
        code = "schema_error"
        if err.validator == "additionalProperties":
            code = "unknown_key"
        problems.append(SpecProblem(path, code, message, _line(root, path)))
    if problems:
        raise SpecError(source, problems)
    return doc, root


def compile_text(text: str, source: str = "<spec>") -> "_engine.Machine":
    """Compiles spec text into an engine :class:`Machine`, or raises :class:`SpecError`."""
    return _compile_cached(text, source)


# Parsing and schema-checking the packaged spec takes ~0.1 s (pure-Python YAML); a compiled
# Machine is immutable, so kernels built from the same text share one (a kernel, a restore,
# a recovery). Errors are not cached.
@lru_cache(maxsize=16)
def _compile_cached(text: str, source: str) -> "_engine.Machine":
    doc, root = parse(text, source)
    doc = {k: v for k, v in doc.items() if k != "templates"}
    try:
        return _engine.Machine.from_json(json.dumps(doc))
    except _engine.SpecError as exc:
        problems = [
            SpecProblem(path, code, message, _line(root, path), hint)
            for path, code, message, hint in exc.problems
        ]
        raise SpecError(source, problems) from None


def load_machine(path: str | Path | None = None) -> "_engine.Machine":
    """Loads and compiles a spec file; ``None`` means the packaged trade-slot spec."""
    p = Path(path) if path is not None else packaged_spec_path()
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(str(p), [SpecProblem("(document)", "unreadable", f"cannot read the spec: {exc.strerror}")]) from None
    return compile_text(text, str(p))
