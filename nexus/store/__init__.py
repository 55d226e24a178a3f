"""PostgreSQL: pool, migrations, partitions, meta, the embedded server and its supervisor, the write
path with its rollups (``write``), the read models of the dashboard (``read``), alerts' tables.
"""
