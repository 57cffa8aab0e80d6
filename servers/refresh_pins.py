"""Move an engine's pins to the newest releases, only if the engine tests pass against them.

    make refresh-pins ENGINE=transformers      (or: .venv/bin/python servers/refresh_pins.py transformers)

1. `loadtest engine install ENGINE --latest` into a scratch $LOADTEST_HOME (the checkout's
   .venvs/ are not touched; --launch looks in $LOADTEST_HOME first);
2. the engine's tests (tests/engines/*ENGINE*.py) run against that environment;
3. only when they pass, `pip freeze` of it becomes loadtest/launch/constraints/<ENGINE>.txt, and
   what moved is printed. Commit the file with the test run's result in the message.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=("llamacpp", "transformers", "vllm"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch environment (its path is printed)")
    ns = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from loadtest.launch import pins
    from loadtest.launch.envs import has_nvidia

    target = pins.constraints_file(ns.engine, gpu=has_nvidia())
    home = Path(tempfile.mkdtemp(prefix=f"loadtest-pins-{ns.engine}-"))
    env = {**os.environ, "LOADTEST_HOME": str(home), "LOADTEST_TEST_VLLM": "1"}
    try:
        subprocess.run([sys.executable, "-m", "loadtest", "engine", "install", ns.engine, "--latest"],
                       cwd=ROOT, env=env, check=True)
        tests = sorted(str(p) for p in (ROOT / "tests" / "engines").glob(f"test_*{ns.engine}*.py"))
        print(f"refresh-pins: running {len(tests)} test files against the newest releases", flush=True)
        t0 = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                                cwd=ROOT, env=env)
        if result.returncode != 0:
            print(f"refresh-pins: the engine tests FAILED against the newest releases; {target.name} is unchanged",
                  file=sys.stderr)
            return 1
        py = home / "engines" / ns.engine / "bin" / "python"
        frozen = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
        made = (f"made {time.strftime('%Y-%m-%d')} with Python {platform.python_version()} on {platform.system()} "
                f"{platform.machine()}; tests/engines passed against it ({time.monotonic() - t0:.0f} s)")
        old = pins.read_pins(target) if target.is_file() else {}
        target.write_text(pins.freeze_text(ns.engine, frozen, made=made))
        new = pins.read_pins(target)
        moved = [f"{n} {old.get(n, 'new')} -> {v}" for n, v in sorted(new.items()) if old.get(n) != v]
        gone = [f"{n} {v} (no longer pulled)" for n, v in sorted(old.items()) if n not in new]
        print(f"refresh-pins: wrote {target.relative_to(ROOT)}: " + ("; ".join(moved + gone) or "nothing moved"))
        return 0
    finally:
        if ns.keep:
            print(f"refresh-pins: scratch environment kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
