"""`mirrord failover`, `mirrord switchover` and `mirrord failback`."""

from __future__ import annotations

import argparse

from mirrord.config import Config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("failover", help="the primary is gone: check the replica, switch the "
                       "site to its read-only mirror, flush memcached")
    p.add_argument("--dry-run", action="store_true", help="run every check, print the plan, "
                   "change nothing")
    p.add_argument("--force", action="store_true", help="go ahead although the replica checks failed, the mirror root is missing or empty, or the pre hook refused")
    p.set_defaults(func=run_failover)
    p = sub.add_parser("switchover", help="planned: wait until the replica and the file mirror "
                       "have everything from the running primary, then switch like failover")
    p.add_argument("--dry-run", action="store_true", help="run every check, print the plan, "
                   "change nothing")
    p.set_defaults(func=run_switchover)
    p = sub.add_parser("failback", help="switch the site back to its read-write configuration "
                       "and flush memcached")
    p.add_argument("--dry-run", action="store_true", help="run every check, print the plan, "
                   "change nothing")
    p.add_argument("--force", action="store_true", help="go ahead although the mirror's "
                   "database was promoted (is no longer a standby) or the pre hook refused")
    p.set_defaults(func=run_failback)


def _procedure(cfg: Config):
    from mirrord.failover.procedure import Procedure   # psycopg and pymemcache only when needed
    return Procedure(cfg)


def run_failover(args: argparse.Namespace, cfg: Config) -> int:
    return _procedure(cfg).failover(dry_run=args.dry_run, force=args.force)


def run_switchover(args: argparse.Namespace, cfg: Config) -> int:
    return _procedure(cfg).switchover(dry_run=args.dry_run)


def run_failback(args: argparse.Namespace, cfg: Config) -> int:
    return _procedure(cfg).failback(dry_run=args.dry_run, force=args.force)
