"""``python -m loadtest.sim``: the test server in the foreground, exactly ``loadtest serve sim``
(its flags are the command line's, cli/serve.py). An entry point, like loadtest/__main__.py."""

import sys

from loadtest.cli.main import main

sys.exit(main(["serve", "sim", *sys.argv[1:]]))
