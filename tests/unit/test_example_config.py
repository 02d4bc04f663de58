"""Checks that configs/faultguard.example.toml documents every setting.

The expected keys come from the pydantic models in `faultguard_core.settings`,
so a new field without an entry in the example fails here. A setting whose
default is None cannot be written in TOML; the example lists it as a
commented-out assignment (`# admin_token = ...`) in its table.
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from faultguard_core.settings import ServiceSettings, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "faultguard.example.toml"
EXAMPLE_SERVICE = "payments"
OVERRIDE_SECTIONS = ("breaker", "retry", "request")

TABLE_LINE = re.compile(r"^\[([A-Za-z0-9_.]+)\]\s*$")
ASSIGNMENT_LINE = re.compile(r"^([A-Za-z0-9_]+)\s*=")
COMMENTED_ASSIGNMENT_LINE = re.compile(r"^#\s*([A-Za-z0-9_]+)\s*=")


def section_models() -> dict[str, type[BaseModel]]:
    """Return the global sections of `Settings` (all but `services`) by name."""
    sections = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[name] = annotation
    return sections


def model_keys(model: type[BaseModel], prefix: str) -> dict[str, Any]:
    """Return the dotted keys below `prefix` with defaults, recursing into models."""
    keys: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.update(model_keys(annotation, f"{prefix}.{name}"))
        else:
            keys[f"{prefix}.{name}"] = field.default
    return keys


def global_keys() -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, model in section_models().items():
        keys.update(model_keys(model, name))
    return keys


def flatten(node: dict[str, Any], prefix: str = "") -> set[str]:
    """Return the dotted keys of every value in parsed TOML that is not a table."""
    keys = set()
    for name, value in node.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if isinstance(value, dict):
            keys.update(flatten(value, dotted))
        else:
            keys.add(dotted)
    return keys


def commented_keys(text: str) -> set[str]:
    """Return `table.key` for every commented-out assignment in the file."""
    keys = set()
    table = ""
    for line in text.splitlines():
        header = TABLE_LINE.match(line)
        if header:
            table = header.group(1)
            continue
        assignment = COMMENTED_ASSIGNMENT_LINE.match(line)
        if assignment and table:
            keys.add(f"{table}.{assignment.group(1)}")
    return keys


@pytest.fixture(scope="module")
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def example_toml(example_text: str) -> dict[str, Any]:
    return tomllib.loads(example_text)


def test_example_loads_with_load_settings() -> None:
    settings = load_settings(EXAMPLE)

    assert set(settings.services) == {EXAMPLE_SERVICE}


def test_example_covers_every_global_field(
    example_text: str, example_toml: dict[str, Any]
) -> None:
    written = flatten(example_toml) | commented_keys(example_text)

    missing = set(global_keys()) - written

    assert missing == set()


def test_example_has_no_unknown_global_keys(example_toml: dict[str, Any]) -> None:
    """Catches stale keys in sections that allow extras, such as storage."""
    global_written = {
        key for key in flatten(example_toml) if not key.startswith("services.")
    }

    unknown = global_written - set(global_keys())

    assert unknown == set()


def test_example_comments_out_only_none_defaults(example_text: str) -> None:
    none_defaults = {key for key, value in global_keys().items() if value is None}

    commented = commented_keys(example_text)

    assert commented == none_defaults


@pytest.mark.parametrize("section", sorted(section_models()))
def test_example_global_values_are_defaults(section: str) -> None:
    example = load_settings(EXAMPLE)
    defaults = load_settings()

    assert getattr(example, section) == getattr(defaults, section)


def test_example_service_covers_fields(example_toml: dict[str, Any]) -> None:
    service = example_toml["services"][EXAMPLE_SERVICE]

    missing = set(ServiceSettings.model_fields) - set(service)

    assert missing == set()


@pytest.mark.parametrize("section", OVERRIDE_SECTIONS)
def test_example_service_overrides_differ(
    example_toml: dict[str, Any], section: str
) -> None:
    """Each override in the example changes its global value, so it shows an effect."""
    example = load_settings(EXAMPLE)
    overrides = example_toml["services"][EXAMPLE_SERVICE][section]
    merged = getattr(example.policy_for(EXAMPLE_SERVICE), section)
    globals_ = getattr(example, section)

    assert overrides
    for key in overrides:
        assert getattr(merged, key) != getattr(globals_, key), key


def test_example_service_override_sections_typed() -> None:
    """ServiceSettings overrides must stay dicts named after the global sections."""
    for section in OVERRIDE_SECTIONS:
        annotation = ServiceSettings.model_fields[section].annotation

        assert typing.get_origin(annotation) is dict, section
        assert section in section_models(), section


def test_example_every_key_has_comment(example_text: str) -> None:
    lines = example_text.splitlines()
    uncommented = []

    for index, line in enumerate(lines):
        is_assignment = ASSIGNMENT_LINE.match(line) or COMMENTED_ASSIGNMENT_LINE.match(
            line
        )
        if not is_assignment:
            continue
        previous = lines[index - 1] if index else ""
        is_comment = previous.startswith("#") and not COMMENTED_ASSIGNMENT_LINE.match(
            previous
        )
        if not is_comment:
            uncommented.append(line)

    assert uncommented == []
