"""The server process: ``ingress`` (the forwarding proxy), ``recorder`` (queue, journal, NOTIFY),
``api`` (the dashboard API and SSE), ``alerts`` (rules, evaluator, channels), ``service`` (start and
stop of everything, in order) and ``serve`` (Hypercorn).
"""
