"""`python -m binsight ...`: the same as the `binsight` console command."""

import sys

from binsight.cli import main

sys.exit(main())
