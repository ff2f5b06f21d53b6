"""Entry point of the `mirrord` console script and `python -m mirrord`: Ctrl-C is exit 130.

Everything else (argument parsing, the config, the commands) is in
mirrord.cli.dispatch, imported inside `main` rather than at the top of this
module: the console script imports this module and then calls `main`, so a
Ctrl-C while the imports ran (the first ~0.1 s of any command, longer for the
SDKs) raised KeyboardInterrupt where nothing caught it and printed a
traceback. Here it is exit 130, quietly, as a shell reports a command Ctrl-C
stopped. SIGTERM keeps its default action until a command installs its own
handler (`run`, `health`; failover, switchover and failback make it and SIGINT
an accounted interruption: mirrord.failover.interrupt): the process ends by the
signal, which prints nothing and which systemd counts as a clean stop (systemd.service(5),
SuccessExitStatus=).

The names of mirrord.cli.dispatch (build_parser, command_module, EXIT_USAGE,
...) can still be read from this module: they are looked up there on first
use (PEP 562 module __getattr__), not imported up front.
"""

# Nothing imported here that the interpreter has not loaded already: this module's own
# imports run before `main` can catch anything.
import sys

EXIT_INTERRUPTED = 130      # 128 + SIGINT (bash(1), EXIT STATUS)


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` names (default: this process's arguments) -> exit code
    (0 ok, 1 failure, 2 usage or config error, 3 refused, 130 interrupted by Ctrl-C).
    Never raises KeyboardInterrupt. As the program (`argv` None), a second Ctrl-C while
    the process exits is ignored: it would otherwise interrupt the exit with a traceback."""
    program = argv is None
    args = sys.argv[1:] if argv is None else argv
    if program and any(c in args for c in ("run", "health", "failover", "switchover",
                                           "failback")):
        # the long-running commands: a SIGHUP before their handler is installed (the
        # imports, ~0.15 s) ended them, and systemd's Restart=on-failure takes a SIGHUP
        # death for a clean stop (breaker J); ignored until then, said once installed.
        # failover, switchover and failback ignore it throughout: a dropped ssh session
        # must not leave a switch half made; the run ends and logs (failover.interrupt)
        import signal
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        from mirrord.cli.dispatch import dispatch

        return dispatch(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if program:
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)


def __getattr__(name: str):
    # dunder names are the import system's questions (`from ... import main` asks for
    # __path__): answering them must not import the commands ahead of `main`
    if not name.startswith("__"):
        from mirrord.cli import dispatch

        if hasattr(dispatch, name):
            return getattr(dispatch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
