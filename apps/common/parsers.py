"""The API's request body parsers (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).

Kept apart from ``apps.common.api``: DRF imports the default parsers while its ``APIView`` class is being
defined, and ``api`` itself imports DRF's views through drf-spectacular."""

from __future__ import annotations

import codecs

from rest_framework import exceptions, parsers

from apps.common import json_input

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a nesting limit (``json_input.MAX_DEPTH``): deeper bodies are a 400 ``parse_error``
    naming the limit, not a ``RecursionError`` (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        parse_constant = parsers.json.strict_constant if self.strict else None
        try:
            return json_input.loads(codecs.getreader(encoding)(stream).read(), parse_constant=parse_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
