"""YAML loaders that never lose a price: no binary floats, no silently dropped duplicates.

``yaml.safe_load("input: 0.1")`` yields the float 0.1000000000000000055…, and once that has
happened the exact price is gone. ``ExactLoader`` builds ``Decimal`` from the scalar's own text
instead, and only reads plain decimal integers as ints: YAML 1.1's octal (``010`` is 8), hex,
binary and base-60 (``1:30``) forms stay strings, so a price written that way is refused by
validation rather than silently misread. A timestamp that is not a real date (``2026-13-01``)
also stays text, so validation can name its field instead of the loader failing on the file.

Exponent forms are numbers whichever way they are written. YAML 1.1 (PyYAML) only calls
``1.5e-1`` a float: ``1e-7`` and ``1.5e1`` resolve as text, so one price in exponent form was
accepted and the next refused. ``ExactLoader`` resolves every ``<digits>[.<digits>]e<exponent>``
as a number too, and both paths end in the same exact ``Decimal`` built from the text.

A mapping that names a key twice keeps only the last copy in YAML, silently: two prices for one
model, and the one that bills is whichever came last. ``UniqueKeyLoader`` (which
``ExactLoader`` extends) refuses it with ``DuplicateKeyError``, naming the key and both lines.
The subclasses have their own constructor and resolver tables; ``yaml.SafeLoader`` is untouched.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)", re.ASCII)
# Every exponent form, with or without a fraction or an exponent sign (YAML 1.1 only takes
# ``1.5e-1``); resolved after PyYAML's own float pattern, so that one still wins where it applies.
_EXPONENT_FORM = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
_NON_FINITE = {".inf": "Infinity", ".nan": "NaN"}


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names ``key`` (its text) twice: on ``first_line``, again on ``line`` (1-based).

    ``problem_mark`` is where the second copy starts; ``key_path`` turns it into the key's path.
    """

    def __init__(self, key: str, first_line: int, mark: yaml.Mark) -> None:
        self.key, self.first_line, self.line = key, first_line, mark.line + 1
        super().__init__(None, None, f"duplicate key {key!r} (first on line {first_line})", mark)

    def describe(self, text: str) -> str:
        """``<path>: duplicate key, on lines 3 and 5; ...``, the key's path found in ``text``
        (the document the loader refused), else the key alone."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            path = key_path(root, self.problem_mark) if root is not None else None
        except (yaml.YAMLError, RecursionError):
            path = None
        lines = (
            f"on lines {self.first_line} and {self.line}"
            if self.first_line != self.line
            else f"twice on line {self.line}"
        )
        return (
            f"{path or repr(self.key)}: duplicate key, {lines}; "
            "YAML would silently keep only the last copy"
        )


def key_path(root: yaml.Node, mark: yaml.Mark | None) -> str | None:
    """The dotted path (``models.gpt-4o``, ``providers[1].name``) of the mapping key that
    starts at ``mark``, or None if no key starts there."""
    if mark is None:
        return None
    seen: set[int] = set()  # anchors can make the node graph cyclic

    def walk(node: yaml.Node, prefix: str) -> str | None:
        if id(node) in seen:
            return None
        seen.add(id(node))
        children: list[tuple[str, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                here = f"{prefix}.{name}" if prefix else name
                start = key_node.start_mark
                if (start.line, start.column) == (mark.line, mark.column):
                    return here
                children.append((here, value_node))
        elif isinstance(node, yaml.SequenceNode):
            children = [(f"{prefix}[{i}]", item) for i, item in enumerate(node.value)]
        for here, child in children:
            found = walk(child, here)
            if found is not None:
                return found
        return None

    return walk(root, "")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming the same key twice.

    Keys brought in by a merge (``<<: *base``) may still be overridden: that is what a merge is
    for. Only the keys written in the mapping itself must be unique.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, yaml.Mark] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue  # complex keys are refused as unhashable by SafeLoader itself
                key = self.construct_object(key_node)
                if not isinstance(key, Hashable):
                    continue
                if key in seen:
                    raise DuplicateKeyError(key_node.value, seen[key].line + 1, key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | str:
    """``!!float`` as an exact Decimal; ``.inf``/``.nan`` become non-finite Decimals so that
    validation can reject them with the field's path; anything else stays text."""
    text = loader.construct_scalar(node)
    cleaned = text.replace("_", "").lower()
    unsigned = cleaned.lstrip("+-")
    if unsigned in _NON_FINITE:
        return Decimal(cleaned[: len(cleaned) - len(unsigned)] + _NON_FINITE[unsigned])
    if ":" in cleaned:
        return text
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return text


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    """``!!int`` only in plain decimal form; the ambiguous YAML 1.1 forms stay text."""
    text = loader.construct_scalar(node)
    if _PLAIN_INT.fullmatch(text):
        return int(text.replace("_", ""))
    return text


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """``!!timestamp`` as SafeLoader reads it (a date or datetime), or the text if invalid."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


class ExactLoader(UniqueKeyLoader):
    """``UniqueKeyLoader`` with exact numbers; use as ``yaml.load(text, Loader=ExactLoader)``."""

    yaml_constructors = {
        **yaml.SafeLoader.yaml_constructors,
        _FLOAT_TAG: _construct_decimal,
        _INT_TAG: _construct_int,
        _TIMESTAMP_TAG: _construct_timestamp,
    }


ExactLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FORM, list("-+0123456789."))
