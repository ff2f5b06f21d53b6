"""`python -m mirrord` is the same as the `mirrord` console script."""

import sys

from mirrord.cli.main import main

sys.exit(main())
