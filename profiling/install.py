"""Installing the shipped questionnaire versions; takes the model class so a migration can pass its own."""

from __future__ import annotations

import json
from typing import Any

from .scoring import DEFAULT_VERSION, DEFINITIONS_DIR, SHIPPED_VERSIONS


def install_questionnaires(questionnaire_model: Any) -> dict[str, Any]:
    """Create the shipped versions that are missing; an existing version is never changed."""
    rows = {}
    for version in SHIPPED_VERSIONS:
        definition = json.loads((DEFINITIONS_DIR / f"{version}.json").read_text())
        rows[version], _ = questionnaire_model.objects.get_or_create(
            version=version,
            defaults={"title": definition["title"], "definition": definition, "is_default": version == DEFAULT_VERSION},
        )
    return rows
