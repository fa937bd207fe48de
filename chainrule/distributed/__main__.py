"""``python -m chainrule.distributed -n N program ...``: see :mod:`chainrule.distributed.launch`."""

import sys

from .launch import main

sys.exit(main())
