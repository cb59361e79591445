"""Validating SBOMs with the formats' own tools: the SPDX project's parser and validator, and
CycloneDX's JSON schema (strict). Each returns the problems found; empty means valid."""

from __future__ import annotations

import json
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.error import SPDXParsingError
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

__all__ = ["cyclonedx_problems", "spdx_problems"]


def spdx_problems(document: dict[str, Any]) -> list[str]:
    """What the SPDX tools reject in ``document``: parse errors and validation messages."""
    try:
        parsed = JsonLikeDictParser().parse(json.loads(json.dumps(document)))
    except SPDXParsingError as error:
        return list(error.get_messages())
    return [message.validation_message for message in validate_full_spdx_document(parsed)]


def cyclonedx_problems(document: dict[str, Any]) -> list[str]:
    errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(
        json.dumps(document), all_errors=True
    )
    return [str(error) for error in errors or ()]
