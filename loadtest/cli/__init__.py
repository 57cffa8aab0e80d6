"""The command line: the only place argparse lives. ``main`` parses, picks the command's module
and runs it; each command module turns its options into config objects and hands them to the
domain packages, imported only when that command runs (so ``--help`` stays cheap)."""
