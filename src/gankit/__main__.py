import sys

from gankit.cli import main

sys.exit(main())
