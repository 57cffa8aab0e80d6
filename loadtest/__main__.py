import sys

from loadtest.cli.main import main

sys.exit(main())
