"""Port 3000: ``/v1/*`` relayed to the upstream and teed into a Record; ``/health``,
``/token-stats``, ``/metrics``.
"""
