"""`python -m chainrule.cli ...`: the same as the `chainrule` command."""

import sys

from .main import main

sys.exit(main())
