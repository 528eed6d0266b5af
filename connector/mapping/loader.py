"""Finding and loading mapping files, with errors that name the file and the YAML line.

A shipped mapping is named ``<system>/<configuration>`` (``evotor/v2``, ``onec/ut11``) and is a *directory* of
``mappings/`` holding one YAML file per document kind (DESIGN §1); a file ``mappings/<name>.yaml`` works too.
Any other argument is a path to a custom file or directory. Files of a directory are read in name order, which
is the order their ``select`` rules are tried.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as MappingABC
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jmespath.parser import ParsedResult
from pydantic import BaseModel, TypeAdapter, ValidationError

from connector.errors import ConfigError
from connector.mapping.spec import DocumentSpec, PostingSpec, ReceiptSpec
from connector.mapping.transforms import Transform
from connector.program import DecimalLoader

__all__ = ["load_spec", "resolve", "shipped_mappings", "shipped_root"]

_SPEC_ADAPTER: TypeAdapter[ReceiptSpec | PostingSpec] = TypeAdapter(DocumentSpec)
_YamlPath = tuple[str | int, ...]


def shipped_root() -> Path:
    """The directory of the mappings shipped with the package (``mappings/``)."""
    return Path(str(resources.files("mappings")))


def shipped_mappings() -> list[str]:
    """Names of the shipped mappings, e.g. ``["crm/generic-example", "crm/retailcrm", "evotor/v2", …]``."""
    root = shipped_root()
    names = {str(path.parent.relative_to(root)) for path in root.rglob("*.yaml")}
    return sorted(name.replace("\\", "/") for name in names)


def resolve(name_or_path: str) -> list[Path]:
    """The YAML files of a mapping name or path, in the order they are tried.

    Raises:
        ConfigError: nothing by that name or path, or a directory without YAML files.
    """
    given = Path(name_or_path)
    candidates = [given] if given.exists() else []
    root = shipped_root()
    candidates += [root / name_or_path, root / f"{name_or_path}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return [candidate]
        if candidate.is_dir():
            files = sorted(candidate.glob("*.yaml"))
            if not files:
                raise ConfigError("mapping directory has no .yaml files", file=str(candidate))
            return files
    known = ", ".join(shipped_mappings())
    raise ConfigError(f"no mapping {name_or_path!r}: neither a file nor a shipped mapping ({known})")


def _compose(path: Path) -> tuple[Any, yaml.Node]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file: {exc.strerror}", file=str(path)) from None
    loader = DecimalLoader(text)  # a YAML float (default: 0.5) must be a Decimal, never a binary float
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError("mapping file is empty", file=str(path))
        return loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {exc.problem or exc}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    finally:
        loader.dispose()


def _lines(node: yaml.Node, prefix: _YamlPath, found: dict[_YamlPath, int]) -> dict[_YamlPath, int]:
    found.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            found[path] = key_node.start_mark.line + 1
            _lines(value_node, path, found)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _lines(child, (*prefix, index), found)
    return found


def _locate(loc: tuple[Any, ...], lines: MappingABC[_YamlPath, int]) -> tuple[str, int | None]:
    """The dotted key path of a pydantic error location and the YAML line nearest to it.

    Parts of ``loc`` that are not YAML keys (the union tag ``receipt``/``posting``, union member names) are
    skipped: a part is kept only when the path with it exists in the file.
    """
    path: _YamlPath = ()
    for part in loc:
        candidate = (*path, part if isinstance(part, int) else str(part))
        if candidate in lines:
            path = candidate
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return key, lines.get(path)


def _param_references(value: Any, at: _YamlPath) -> Iterator[tuple[str, _YamlPath]]:
    """Every mapping parameter a spec names (``param('x')`` in expressions, ``$x`` in transform arguments)."""
    if isinstance(value, ParsedResult):
        yield from ((name, at) for name in _param_calls(value.parsed))
    elif isinstance(value, Transform):
        yield from _param_references(value.args, (*at, value.name))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _param_references(getattr(value, name), (*at, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _param_references(item, (*at, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _param_references(item, (*at, index))
    elif isinstance(value, str) and value.startswith("$") and len(at) >= 2 and at[-1] in {"zone", "value"}:
        yield value[1:], at


def _param_calls(node: MappingABC[str, Any]) -> Iterator[str]:
    children = node.get("children", ())
    is_param = node.get("type") == "function_expression" and node.get("value") == "param" and children
    if is_param and children[0].get("type") == "literal" and isinstance(children[0].get("value"), str):
        yield children[0]["value"]
    for child in children:
        if isinstance(child, MappingABC):
            yield from _param_calls(child)


def _check_params(spec: ReceiptSpec | PostingSpec, path: Path, lines: MappingABC[_YamlPath, int]) -> None:
    for name, at in _param_references(spec, ()):
        if name not in spec.params:
            key, line = _locate(at, lines)
            declared = ", ".join(sorted(spec.params)) or "none"
            message = f"invalid mapping: unknown parameter {name!r} (params: declares {declared})"
            raise ConfigError(message, file=str(path), line=line, key=key or None)


def load_spec(path: Path) -> ReceiptSpec | PostingSpec:
    """Load and validate one mapping file: schema, JMESPath expressions, transform names and arguments.

    Raises:
        ConfigError: with ``file``, ``line`` and ``key`` of the first problem.
    """
    data, node = _compose(path)
    if not isinstance(data, dict):
        raise ConfigError("a mapping file is a YAML mapping (system:, produces:, …)", file=str(path), line=1)
    lines = _lines(node, (), {})
    try:
        spec = _SPEC_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ("produces",) if first["type"].startswith("union_tag") else tuple(first["loc"])
        key, line = _locate(loc, lines)
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid mapping: {message}", file=str(path), line=line, key=key or None) from None
    _check_params(spec, path, lines)
    return spec
