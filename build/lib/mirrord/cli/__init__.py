"""Command line: one module per subcommand, each with add_parser(sub) and run(args, cfg) -> int."""
