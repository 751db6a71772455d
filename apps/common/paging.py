"""Pagination of API lists.

``Pagination`` is DRF's page-number pagination, the default of every list. ``TokenCursor`` pages over backends that
only give a "next page" token (MLflow, Azure): the previous pages' tokens travel in the ``history`` query parameter,
so Previous works without server state. (Kept free of drf-spectacular imports: DRF imports this module while it
builds its generic views.)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.http import QueryDict
from rest_framework.pagination import PageNumberPagination

__all__ = ["Pagination", "TokenCursor", "MAX_HISTORY"]

SEPARATOR = "~"  # not in MLflow's base64 tokens
FIRST_PAGE = "-"  # stands for "no token" inside the history
MAX_HISTORY = 200


class Pagination(PageNumberPagination):
    """``?page=2&page_size=50`` (at most 100), answering ``{count, next, previous, results}``."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100


@dataclass(frozen=True)
class TokenCursor:
    token: str
    history: tuple[str, ...]

    @classmethod
    def from_query(cls, query: QueryDict) -> TokenCursor:
        history = query.get("history", "")
        items = tuple("" if t == FIRST_PAGE else t for t in history.split(SEPARATOR)) if history else ()
        return cls(token=query.get("page_token", ""), history=items[-MAX_HISTORY:])

    @property
    def number(self) -> int:
        return len(self.history) + 1

    def _query(self, query: QueryDict, token: str, history: tuple[str, ...]) -> str:
        params = {k: v for k, v in query.items() if k not in ("page_token", "history")}
        if token:
            params["page_token"] = token
        if history:
            params["history"] = SEPARATOR.join(t or FIRST_PAGE for t in history)
        return "?" + urlencode(params) if params else "?"

    def next_query(self, query: QueryDict, next_token: str | None) -> str | None:
        if not next_token:
            return None
        return self._query(query, next_token, (*self.history, self.token))

    def previous_query(self, query: QueryDict) -> str | None:
        if not self.history:
            return None
        return self._query(query, self.history[-1], self.history[:-1])
