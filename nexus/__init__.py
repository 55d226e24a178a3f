"""Claude Nexus Monitor's shared half: ``core`` (pure logic and types), ``pricing``, ``store``
(PostgreSQL), ``sim`` (the simulated upstream and demo traffic) and ``cli`` (the ``nexus`` command).

The map is docs/architecture.md.
"""
