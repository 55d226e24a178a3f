"""The dashboard's read models, one module each, behind one facade: ``DashboardQueries``.

====================  =========================================
module                answers
====================  =========================================
``stats``             ``/api/stats``
``windows``           ``/api/token-usage/current``, ``/daily``
``timeseries``        ``/api/timeseries``
``requests``          ``/api/requests``, ``/api/requests/{id}``
``errors``            ``/api/errors``
``costs``             ``/api/costs``
``sessions``          ``/api/sessions``, ``/api/sessions/{id}``
``limits``            ``/api/limits``, ``/api/limits/history``
``base`` / ``cache``  pool, timing, rollup reads, shared shapes
====================  =========================================
"""

from __future__ import annotations

from nexus.core.timebuckets import ceil_minute, floor_minute, floor_to, iso
from nexus.store.errors import DatabaseUnavailable
from nexus.store.read.base import Filters, ping, timed
from nexus.store.read.cache import RollupCache
from nexus.store.read.costs import CostQueries
from nexus.store.read.errors import ErrorQueries
from nexus.store.read.limits import LimitQueries
from nexus.store.read.requests import decode_cursor, encode_cursor, request_row
from nexus.store.read.sessions import SessionQueries, decode_session_cursor
from nexus.store.read.stats import StatsQueries
from nexus.store.read.timeseries import TimeseriesQueries
from nexus.store.read.windows import WindowQueries

__all__ = [
    "DashboardQueries", "DatabaseUnavailable", "Filters", "RollupCache", "ceil_minute", "decode_cursor",
    "decode_session_cursor",
    "encode_cursor", "floor_minute", "floor_to", "iso", "ping", "request_row", "timed",
]


class DashboardQueries(StatsQueries, WindowQueries, TimeseriesQueries, ErrorQueries, CostQueries, LimitQueries,
                       SessionQueries):
    """Every read the dashboard API makes, over one pool (built per request by the API)."""
