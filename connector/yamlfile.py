"""Reading the YAML files integrators write: exact decimals, ``${ENV}`` references, errors with key path and line.

Every YAML float is read as :class:`~decimal.Decimal` from its source text (``percent: 7.35`` never passes
through binary floating point). ``${NAME}`` / ``${NAME:-default}`` references are protected before parsing, so
they may stand unquoted even inside flow mappings (``{token: ${EVOTOR_TOKEN}}``), and are resolved afterwards by
:func:`substitute_env`; ``$${`` writes a literal ``${``. Validation errors render as one line::

    connector.yaml: systems.onec.base_url (line 44): must start with http:// or https://
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.errors import ConfigError

__all__ = [
    "DecimalLoader",
    "YamlDocument",
    "child_node",
    "key_path",
    "line_of",
    "read_yaml",
    "substitute_env",
    "validation_error",
]

_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}")
_PLACEHOLDER = re.compile(r"LCENV(\d+)X")


class DecimalLoader(yaml.SafeLoader):
    """Safe YAML loader that reads floats as Decimal, from their source text.

    Example:
        >>> yaml.load("percent: 7.35", Loader=DecimalLoader)
        {'percent': Decimal('7.35')}
    """


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    return Decimal(text)


DecimalLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its data (env references still as placeholders), node tree and references."""

    path: Path
    data: Any
    root: yaml.Node | None
    refs: tuple[tuple[str, str | None] | None, ...]  # (name, default), or None for a literal "${"


def _protect(text: str) -> tuple[str, tuple[tuple[str, str | None] | None, ...]]:
    refs: list[tuple[str, str | None] | None] = []

    def placeholder(match: re.Match[str]) -> str:
        refs.append(None if match.group(0) == "$${" else (match.group(1), match.group(2)))
        return f"LCENV{len(refs) - 1}X"

    return _ENV_REF.sub(placeholder, text), tuple(refs)


def _construct(root: yaml.Node | None) -> Any:
    if root is None:
        return None
    loader = DecimalLoader("")  # a SafeLoader: builds plain data only
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> YamlDocument:
    """Read and parse a YAML file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"{path}: cannot read the file: {reason}") from None
    protected, refs = _protect(text)
    try:
        root = yaml.compose(protected, Loader=DecimalLoader)
        return YamlDocument(path, _construct(root), root, refs)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def substitute_env(document: YamlDocument, value: Any, path: str = "") -> Any:
    """Resolve the ``${NAME}`` references inside ``value`` (a part of ``document.data`` found at ``path``)."""
    if isinstance(value, dict):
        return {k: substitute_env(document, v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(document, item, f"{path}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str) or "LCENV" not in value:
        return value

    def resolve(match: re.Match[str]) -> str:
        ref = document.refs[int(match.group(1))]
        if ref is None:
            return "${"
        name, default = ref
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{document.path}: {path}: environment variable {name} is not set")

    return _PLACEHOLDER.sub(resolve, value)


def child_node(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    """The node under a mapping key or sequence index, or None."""
    if isinstance(node, yaml.MappingNode):
        return next((value for key, value in node.value if key.value == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the deepest node on ``loc`` that exists (a missing key points at its parent)."""
    for part in loc:
        child = child_node(node, part)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1 if node is not None else None


def key_path(loc: Sequence[str | int]) -> str:
    """Render a location as ``a.b[1].c``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_error(
    exc: ValidationError, document: YamlDocument, prefix: Sequence[str | int] = ()
) -> ConfigError:
    """One ConfigError listing every problem as ``key.path (line N): reason``, led by the file name."""
    problems = []
    for error in exc.errors():
        # Drop pydantic's union-branch tags such as "function-after[...]" from the location.
        loc = [*prefix, *(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))]
        line = line_of(document.root, loc)
        reason = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{key_path(loc) or '(top level)'}{f' (line {line})' if line else ''}: {reason}")
    return ConfigError(f"{document.path}: " + "; ".join(problems))
