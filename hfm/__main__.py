"""``python -m hfm`` (and ``accelerate launch -m hfm``) run the same command as ``hfm``."""

import sys

from hfm.cli import main

sys.exit(main())
