"""The INI file, parsed once into frozen dataclasses.

Every problem in the file is collected and reported together (file, section,
key, what is wrong), so an operator fixes the file in one go. Relative paths
are resolved against the directory holding the config file, so the same file
works whatever the current directory is. Nothing here talks to a service.

model: the dataclasses; values: value parsers and the problem-collecting reader; hostport:
host:port values and ports, each refusal with its reason;
sections / failover: one reader per section; host: keys checked against this host
(state_dir, ssh_command's program); overlap: targets one inside another; load: the
whole file.
"""

from mirrord.config.model import (  # noqa: F401 - the package's interface
    Config,
    DEFAULT_PATHS,
    FailoverConfig,
    HealthConfig,
    LOG_LEVELS,
    LocalOptions,
    MirrordSettings,
    ReconcileConfig,
    RsyncOptions,
    S3Options,
    SECRET_KEYS,
    SourceConfig,
    T,
    TARGET_TYPES,
    TargetConfig,
)
from mirrord.config.values import (  # noqa: F401 - the package's interface
    _DURATION,
    _FALSE,
    _Reader,
    _SIZE,
    _TRUE,
    _UNITS,
    parse_bool,
    parse_duration,
    parse_every,
    parse_list,
    parse_positive_int,
    parse_size,
)
from mirrord.config.hostport import parse_hostport  # noqa: F401 - the package's interface
from mirrord.config.worker_defaults import RSYNC_DEFAULT_WORKERS  # noqa: F401 - the package's interface
from mirrord.config.sections import (  # noqa: F401 - the package's interface
    WATCHERS,
    _COMMON_TARGET_KEYS,
    _MIRRORD_KEYS,
    _RECONCILE_KEYS,
    _SOURCE_KEYS,
    _TARGET_KEYS,
    _normalise_dest,
    _read_exclude,
    _read_local,
    _read_mirrord,
    _read_reconcile,
    _read_rsync,
    _read_s3,
    _read_source,
    _read_target,
    _read_watcher,
)
from mirrord.config.failover import (  # noqa: F401 - the package's interface
    HOOK_NAMES,
    _FAILOVER_KEYS,
    _HEALTH_KEYS,
    _HOSTNAME,
    _parse_memcached,
    _read_check,
    _read_failover,
    _read_health,
    _read_hooks,
    parse_memcached_server,
)
from mirrord.config.load import (  # noqa: F401 - the package's interface
    _build,
    _check_cross_references,
    _inside,
    _warn_if_secret_readable,
    find_config,
    load,
)
