"""`python -m iolab.doctor doctor|explain ...` (the same as `iolab doctor|explain ...`)."""

import sys

from iolab.doctor.cli import main

sys.exit(main())
