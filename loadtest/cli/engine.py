"""``loadtest engine install|list``: each engine in its own environment, at its pinned versions
(launch/install.py, launch/pins.py)."""

from __future__ import annotations

import argparse
from typing import Any

from loadtest.cli import argtypes, options
from loadtest.launch import ENV_ENGINES


def add_parsers(sub: Any) -> None:
    engine = sub.add_parser("engine", help="install engines into their own environments, or list them",
                            description="Install engines into their own environments (pinned, known-good versions), "
                                        "or list what is installed against the pins.")
    engine_sub = engine.add_subparsers(dest="action", required=True, metavar="ACTION")
    inst = engine_sub.add_parser("install", help="create ENGINE's own virtualenv (llamacpp, transformers, vllm)")
    inst.add_argument("engines", nargs="+", metavar="ENGINE", choices=ENV_ENGINES)
    inst.add_argument("--dir", type=argtypes.input_path, help="where the environments go (default: $LOADTEST_HOME/engines, else "
                                               "the per-user data directory)")
    inst.add_argument("--force", action="store_true", help="reinstall even if already installed")
    inst.add_argument("--latest", action="store_true",
                      help="install the newest releases instead of the pinned known-good versions (reinstalls)")
    options.debug(inst)
    inst.set_defaults(run=install)
    listing = engine_sub.add_parser("list", help="which engines are installed, where, which version, and their pins")
    options.debug(listing)
    listing.set_defaults(run=show)


def install(ns: argparse.Namespace) -> int:
    from loadtest.launch.install import default_install_dir
    from loadtest.launch.install import install as install_engine
    from loadtest.run.output import writable_dir

    # Checked before any engine: a --dir that is a file, lies under a file or cannot be written was
    # an OSError (exit 1) after the recipe was chosen, or a half-made environment for a later engine.
    directory = (ns.dir or default_install_dir()).expanduser().resolve()
    writable_dir(directory, "--dir" if ns.dir else "the engines directory")
    for name in ns.engines:
        install_engine(name, directory, force=ns.force, latest=ns.latest)
    return 0


def show(ns: argparse.Namespace) -> int:
    from loadtest.launch.install import engine_table
    from loadtest.run.console import render_rows

    rows, notes = engine_table()
    print(render_rows(rows, ["engine", "status", "installed", "pinned", "where"]))
    for note in notes:
        print(f"note: {note}")
    return 0
