"""`mirrord health` on the mirror host: can the mirror take over right now?

runner.py runs the failover checks at most once per [health] interval for any
number of clients; service.py serves /live, /ready and /metrics over HTTP.
"""
