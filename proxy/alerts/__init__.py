"""Alerts: pure rules (``rules``), the evaluator task (``manager``), delivery (``channels``) and
``GET /api/alerts`` (``routes``).
"""
