"""Checks that docs/configuration.md documents every setting of `Settings`.

The expected TOML keys and environment variable names are generated from the
pydantic models, so a new or renamed field without a docs entry fails here.
Each global setting must have a table row `| key | env | default | meaning |`
whose default, read as TOML, validates to the model's default.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from faultguard_core.settings import (
    CONFIG_ENV_VAR,
    ENV_PREFIX,
    ServiceSettings,
    Settings,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
UNSET = "unset"


def section_models() -> dict[str, type[BaseModel]]:
    """Return the global sections of `Settings` (all but `services`) by name."""
    sections = {}
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[name] = annotation
    return sections


def global_settings() -> list[tuple[str, str, type[BaseModel], str]]:
    """Return (TOML key, env name, section model, field) for every global setting."""
    rows = []
    for section, model in section_models().items():
        for field in model.model_fields:
            key = f"{section}.{field}"
            env = f"{ENV_PREFIX}{section.upper()}__{field.upper()}"
            rows.append((key, env, model, field))
    return rows


def service_settings() -> list[tuple[str, str]]:
    """Return (TOML key, env name) for every field of a service table."""
    rows = []
    for field, info in ServiceSettings.model_fields.items():
        key = f"services.<name>.{field}"
        env = f"{ENV_PREFIX}SERVICES__<NAME>__{field.upper()}"
        if typing.get_origin(info.annotation) is dict:
            env += "__<KEY>"
        rows.append((key, env))
    return rows


def table_cells(text: str, key: str) -> list[str]:
    """Return the cells of the one table row whose first cell is `key`."""
    rows = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"expected one table row for {key}, found {len(rows)}"
    return [cell.strip() for cell in rows[0].strip().strip("|").split("|")]


def parse_default(cell: str) -> Any:
    """Read a Default cell: `unset` is None, anything else a TOML value in backticks."""
    if cell == UNSET:
        return None
    assert cell.startswith("`"), cell
    assert cell.endswith("`"), cell
    return tomllib.loads(f"value = {cell.strip('`')}")["value"]


@pytest.fixture(scope="module")
def docs_text() -> str:
    return DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("key", "env"), [(key, env) for key, env, _, _ in global_settings()]
)
def test_docs_name_global_setting(docs_text: str, key: str, env: str) -> None:
    assert f"`{key}`" in docs_text
    assert f"`{env}`" in docs_text


@pytest.mark.parametrize(
    ("key", "env", "model", "field"),
    global_settings(),
    ids=[key for key, _, _, _ in global_settings()],
)
def test_docs_row_matches_default(
    docs_text: str, key: str, env: str, model: type[BaseModel], field: str
) -> None:
    cells = table_cells(docs_text, key)
    default = getattr(model(), field)

    documented = parse_default(cells[2])

    assert cells[1] == f"`{env}`"
    if documented is None:
        assert default is None
    else:
        assert getattr(model.model_validate({field: documented}), field) == default
    assert cells[3], f"{key} has no meaning"


@pytest.mark.parametrize(("key", "env"), service_settings())
def test_docs_name_service_setting(docs_text: str, key: str, env: str) -> None:
    cells = table_cells(docs_text, key)

    assert cells[1] == f"`{env}`"


def test_docs_name_config_env_var(docs_text: str) -> None:
    assert f"`{CONFIG_ENV_VAR}`" in docs_text


def test_docs_have_no_unknown_keys(docs_text: str) -> None:
    """Every settings table row names a setting that exists."""
    known = {key for key, _, _, _ in global_settings()}
    known |= {key for key, _ in service_settings()}
    documented = set()
    for line in docs_text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        is_settings_row = len(cells) == 4 and cells[1].startswith(f"`{ENV_PREFIX}")
        if is_settings_row:
            documented.add(cells[0].strip("`"))

    assert documented - known == set()
