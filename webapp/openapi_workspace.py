"""OpenAPI paths and schemas of process versions (issue 5), merged by ``build_openapi``."""

from __future__ import annotations

from typing import Any

#: component schemas this part adds (name -> schema)
SCHEMAS: dict[str, Any] = {}


def paths() -> dict[str, Any]:
    """Path items this part adds (path -> item); may use the helpers of ``webapp.openapi``."""
    return {}
