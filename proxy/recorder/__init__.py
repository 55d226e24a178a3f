"""Records leave the request path here: a bounded queue, a batching writer, the on-disk journal
when the database is away, NOTIFY to and LISTEN from other instances, ``/token-stats`` totals.
"""
