"""Screens pushed over the dashboard: drill-down, help, filter, alerts."""
