"""``loadtest rerun DIR``: the run in DIR again, exactly (run/recipe.py reads it back), against the
same server or another (``--endpoint``), into a new directory; the pair feeds ``compare``.

Only what a result file cannot hold, or what differs on another server, is taken from the command
line: the endpoint, the API key and auth-like headers, the model name (by default the one the run
sent, so that the bodies are the same bytes), the transport, and where the results go. Every
option of this command is therefore an override: one not given keeps the saved run's value.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Any

from loadtest.cli import argtypes, configs, options
from loadtest.errors import ConfigError

KEPT = ("help", "directory")


def add_parsers(sub: Any) -> None:
    help_text = "run a saved run again exactly: same prompts, seed, load shape and request bodies"
    p = sub.add_parser("rerun", help=help_text,
                       description=help_text + ", against the same server or another (--endpoint); a --repeat "
                                               "group runs again as a group. Every option here overrides the "
                                               "saved run's; the API key is never saved, so give it again.")
    p.add_argument("directory", type=argtypes.input_path, metavar="DIR",
                   help="a run directory (summary.json, or config.json of a run that crashed) or a --repeat group")
    options.endpoint(p, timeout_s=None, limits=False)
    options.output(p)
    options.debug(p)
    for action in p._actions:  # only what is given overrides: nothing defaults
        if action.dest not in KEPT:
            action.default = argparse.SUPPRESS
    p.set_defaults(run=main)


def main(ns: argparse.Namespace) -> int:
    from loadtest.redact import add_secret
    from loadtest.run.output import default_output_dir
    from loadtest.run.recipe import load_recipe

    given = vars(ns)
    recipe = load_recipe(ns.directory)
    cfg = recipe.cfg
    check_ranges(cfg)
    if "endpoint" in given:
        base_url = configs.normalized(ns.endpoint)
    elif recipe.engine:
        raise ConfigError(f"{ns.directory} ran against an engine loadtest launched ({recipe.engine}), which is gone: "
                          "start one and give its --endpoint URL")
    elif not cfg.base_url or "***" in cfg.base_url:
        raise ConfigError(f"{ns.directory}: its endpoint was not saved in full; give --endpoint URL")
    else:
        base_url = cfg.base_url
    key = os.environ.get(ns.api_key_env) if "api_key_env" in given else given.get("api_key") or \
        os.environ.get("OPENAI_API_KEY")
    if "api_key_env" in given and not key:
        raise ConfigError(f"--api-key-env {ns.api_key_env}: that environment variable is not set")
    add_secret(key)
    headers = _headers(cfg.headers, given.get("headers") or [], recipe.masked_headers)
    output = given.get("output") or default_output_dir(cfg.command)
    cfg = replace(cfg, base_url=base_url, api_key=key, headers=headers, output_dir=output,
                  model=given.get("model") or recipe.model, quiet=given.get("quiet", False),
                  **{k: given[k] for k in ("transport", "azure", "api_version", "insecure") if k in given})
    for note in recipe.notes:
        print(f"loadtest: note: {note}", file=sys.stderr)
    if recipe.key_sent and not key:
        print("loadtest: warning: the saved run sent an API key, which is never saved: give --api-key, "
              "--api-key-env NAME or $OPENAI_API_KEY", file=sys.stderr)
    return _run(cfg, recipe, overwrite=bool(given.get("overwrite")))


def check_ranges(cfg: Any) -> None:
    """Each numeric option of a saved run through its command-line option's own type (cli/argtypes.py),
    before anything starts: a recipe edited to concurrency -5, duration_s 0 or max_tokens 0 is refused
    with the rule and message that option gives, the ranges written once (a negative concurrency ran
    nothing and reported 0 requests; a zero timeout failed every request)."""
    from dataclasses import fields

    from loadtest.cli.main import build_parser
    from loadtest.run.recipe import RERUNNABLE

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    names = {f.name for f in fields(cfg)}
    checked: set[str] = set()
    # the run's own command first; then the other's, for a field its command has no option for (a
    # single run's concurrency, a duration_s written into a single run's recipe)
    for action in (a for command in (cfg.command, *RERUNNABLE) for a in sub.choices[command]._actions):
        name = action.dest if action.dest in names else action.dest + "_s"
        value = getattr(cfg, name, None) if name in names and name not in checked else None
        if not callable(action.type) or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        checked.add(name)
        try:
            action.type(str(value))
        except argparse.ArgumentTypeError as exc:
            option = action.option_strings[-1] if action.option_strings else name
            raise ConfigError(f"the saved run's option {name} ({option}) is {value!r}: {exc}") from None


def _headers(saved: tuple[tuple[str, str], ...], given: list[tuple[str, str]],
             masked: list[str]) -> tuple[tuple[str, str], ...]:
    """The saved headers, each given one replacing its namesake; a masked value must be given."""
    names = {name.lower() for name, _ in given}
    missing = [m for m in masked if m.lower() not in names]
    if missing:
        raise ConfigError(f"the saved run sent header {missing[0]!r}, whose value is never saved: give it again with "
                          f"--header '{missing[0]}: VALUE'")
    return tuple([(k, v) for k, v in saved if k.lower() not in names] + list(given))


def _run(cfg: Any, recipe: Any, *, overwrite: bool) -> int:
    from loadtest.cli.run import Invocation, run_command
    from loadtest.series.repeat import RepeatSettings

    repeat = RepeatSettings.of(recipe.repeat) if recipe.repeat else None
    what = f"{cfg.command}" + (f" x{repeat.n}" if repeat else "")
    print(f"loadtest: rerun of {recipe.directory} ({what}, seed {cfg.seed}) against {cfg.base_url} into "
          f"{cfg.output_dir}", file=sys.stderr, flush=True)
    return run_command(cfg, Invocation(overwrite=overwrite, objectives=tuple(recipe.objectives),
                                       attainment=recipe.attainment, workers=recipe.workers, repeat=repeat))
