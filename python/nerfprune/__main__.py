"""`python -m nerfprune` = the `nerfprune` console script."""

import sys

from nerfprune.cli import main

sys.exit(main())
