"""Rules the request boundary applies to every request, stated in the OpenAPI document.

Constraints of one field or parameter are declared where it is (pydantic ``Field``, FastAPI
``Query``/``Path``), so the document and the validation are one declaration. One rule is not a
field's: :mod:`portside.api.input_check` refuses control characters in every text of every
request, before any handler. This writes it into the document, on every string a request may
carry that no narrower pattern, format or enumeration already constrains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from portside.text import SAFE_TEXT_PATTERN

__all__ = ["document_text_rule"]

_REF = "#/components/schemas/"
_NARROWER = ("pattern", "enum", "const", "format")
_ANNOTATIONS = {"title", "description", "default", "examples"}
# Any JSON value whose strings and keys keep the rule: what a free-form part of a body may hold.
_ANY_JSON = "SafeJsonValue"
_ANY_JSON_REF = {"$ref": _REF + _ANY_JSON}
_ANY_JSON_SCHEMA = {
    "description": "Any JSON value whose strings and keys hold no control character.",
    "anyOf": [
        {"type": "string", "pattern": SAFE_TEXT_PATTERN},
        {"type": ["number", "boolean", "null"]},
        {"type": "array", "items": _ANY_JSON_REF},
        {
            "type": "object",
            "propertyNames": {"pattern": SAFE_TEXT_PATTERN},
            "additionalProperties": _ANY_JSON_REF,
        },
    ],
}


def document_text_rule(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so the document it builds carries :data:`SAFE_TEXT_PATTERN`."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas[_ANY_JSON] = _ANY_JSON_SCHEMA
        seen: set[str] = set()
        for item in document.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict):
                    continue
                for parameter in operation.get("parameters", []):
                    _constrain(parameter.get("schema", {}), schemas, seen)
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    _constrain(media.get("schema", {}), schemas, seen)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _constrain(schema: Any, schemas: dict[str, Any], seen: set[str]) -> None:
    """Add the pattern to every unconstrained string in ``schema``, following references to
    request models once each."""
    if isinstance(schema, list):
        for item in schema:
            _constrain(item, schemas, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        name = ref.removeprefix(_REF)
        if name not in seen and name in schemas:
            seen.add(name)
            _constrain(schemas[name], schemas, seen)
        return
    if set(schema) <= _ANNOTATIONS:  # a free-form value
        schema.update(_ANY_JSON_REF)
        return
    if schema.get("type") == "string" and not any(key in schema for key in _NARROWER):
        schema["pattern"] = SAFE_TEXT_PATTERN
    if schema.get("type") == "object":
        # Keys are text too, and so is whatever a property no model names holds.
        schema.setdefault("propertyNames", {"pattern": SAFE_TEXT_PATTERN})
        if schema.get("additionalProperties", True) in (True, {}):
            schema["additionalProperties"] = dict(_ANY_JSON_REF)
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            for nested in value.values():
                _constrain(nested, schemas, seen)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            _constrain(value, schemas, seen)
