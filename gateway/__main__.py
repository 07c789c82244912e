"""``python -m gateway`` is the ``learnroom`` command."""

import sys

from gateway.cli import main

sys.exit(main())
