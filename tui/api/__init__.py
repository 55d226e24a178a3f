"""The monitor's side of the HTTP boundary: client, live stream, view models, queries. No Textual here.

``client`` (``DashboardClient``), ``stream`` (``EventStream``: SSE with reconnect), ``models`` and
``reports`` (the JSON of ``docs/api.md`` as dataclasses), ``query`` (range and filters), ``errors``.
"""
