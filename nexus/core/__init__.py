"""The core: settings, errors, record and event types, usage parsing, accounts, redaction, latency
buckets, token windows, time buckets, run files. Pure logic and small I/O; no web or UI framework.
"""
