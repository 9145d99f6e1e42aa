"""Reports over ClickHouse: summary figures, the call list and its exports.

Every function here takes a ``shared.clickhouse.client.ClickHouse``, so the same queries run on
clickhouse-server 18.16 and on chDB (current ClickHouse) in the tests.
"""
