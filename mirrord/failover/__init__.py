"""Switching the site to its read-only mirror and back.

replica.py asks PostgreSQL, heartbeat.py reads the file mirror's heartbeat,
appconfig.py flips the application's configuration (flagfile.py for
[failover] mode = flagfile, switch_record.py keeps what stood there before),
cache.py flushes memcached, steps.py runs the changes in order and procedure.py ties them into
the failover, switchover and failback commands (switchover_waits.py: the switchover's waits
for the replica and the file mirror to catch up).
"""
