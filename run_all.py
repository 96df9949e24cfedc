#!/usr/bin/env python
"""Run the DFIG notebooks end to end with papermill, for one profile, and rebuild the paper.

    python run_all.py                      # smoke profile: synthetic data, CPU, minutes (the default)
    python run_all.py --profile sample     # the real face sample (../shared/data/faces140k-sample)
    python run_all.py --profile paper --data /data/140k   # full data + official weights on a GPU
    python run_all.py --profile paper-standin             # the paper profile with stand-in weights (GPU)
    python run_all.py --list               # what would run, with the parameters
    python run_all.py --only 04_train      # just the runs of one notebook (prefix match)
    python run_all.py --paper-only         # rebuild DFIG_v2.pdf from the existing results
    python run_all.py --jobs 2 --threads 1 # independent runs side by side (one GPU each with --gpus 0,1)
    python run_all.py --executor slurm     # one Slurm job per run (submitit; shared filesystem)
    python run_all.py --plan [--rates device_check.json]   # files, disk and time per stage; runs nothing

Profiles are YAML files in profiles/; ``base: <profile>`` inherits one and lists only what differs
(see ``inherit``). Each run's parameter names are checked against the notebook's
``parameters`` cell before anything executes. Executed notebooks (ipynb + HTML) go to
reports/<profile>/executed/, and reports/<profile>/manifest.json records the commit, package versions,
device, per-run timings and parameters, data counts, official weights found and fallbacks used.
The exit code is non-zero when a run fails; the message names the notebook and the cell. How runs are
ordered and executed (local workers, Slurm) and the plan live in :mod:`dfig.pipeline`.
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dfig import paths
from dfig.data import check as data_check
from dfig.notebook import train_run_name
from dfig.pipeline import cli as pipeline_cli
from dfig.pipeline.execute import make_spec
from dfig.pipeline.graph import dependencies
from dfig.pipeline.scheduler import run_graph
from dfig.report import manifest, profilecheck, runstate

NOTEBOOKS = paths.notebooks_dir()


def load_profile(name: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read profiles/<name>.yaml (or a path to a YAML file), resolving ``base:`` (see :func:`inherit`)."""
    p = profile_path(name)
    if not p.exists():
        have = sorted(q.stem for q in paths.profiles_dir().glob("*.yaml"))
        raise SystemExit(f"profile {name!r} not found ({p}); available: {', '.join(have)}")
    prof = profilecheck.read_yaml(p, profile_source(name))  # issue 22: syntax errors as one line
    if isinstance(prof, dict):
        profilecheck.check_shape(prof, profile_source(name), p)  # key types, safe name, with line numbers
    if isinstance(prof, dict) and prof.get("base"):  # anything else: check_profile names the problem
        if prof["base"] in (*_chain, name):
            raise SystemExit(f"profile {p}: circular base {' -> '.join((*_chain, name, prof['base']))}")
        prof = inherit(load_profile(prof["base"], (*_chain, name)), prof)
    return prof


def profile_path(name: str) -> Path:
    """The file of profile ``name``: ``profiles/<name>.yaml``, or ``name`` itself when it is a YAML path."""
    return Path(name) if name.endswith((".yaml", ".yml")) else paths.profiles_dir() / f"{name}.yaml"


def profile_source(name: str) -> str:
    """How errors name a profile's file: relative to the repository root when inside it, else as given."""
    p = profile_path(name)
    try:
        return str(p.resolve().relative_to(paths.root().resolve()))
    except ValueError:
        return str(p)


def inherit(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A profile = its base plus overrides. Top-level keys replace the base's; ``common`` is merged key by
    key; ``params: {notebook: {...}}`` is merged into that notebook's run params and ``grids: {notebook:
    [...]}`` replaces its grid. Returns the merged profile (``base`` = the base profile's name)."""
    out = {**base, **{k: v for k, v in over.items() if k not in ("common", "params", "grids")}}
    out["common"] = {**base.get("common", {}), **over.get("common", {})}
    if "profile" in out["common"] and "profile" not in over.get("common", {}):
        out["common"]["profile"] = over.get("name", out["common"]["profile"])  # never the base's folder
    params, grids = over.get("params", {}), over.get("grids", {})
    unknown = sorted((set(params) | set(grids)) - {r["notebook"] for r in out["runs"]})
    if unknown:
        raise SystemExit(f"profile {over.get('name')!r}: params/grids for notebooks its runs lack: {unknown}")
    out["runs"] = [
        {
            **r,
            "params": {**r.get("params", {}), **params.get(r["notebook"], {})},
            **({"grid": grids[r["notebook"]]} if r["notebook"] in grids else {}),
        }
        for r in out["runs"]
    ]
    out["base"] = base["name"]
    return out


def apply_weights_policy(profile: dict[str, Any]) -> str:
    """Export the profile's stand-in policy (``DFIG_STANDIN``) to this process and its notebooks.

    ``standin_weights: require`` (paper-standin) also points ``DFIG_WEIGHTS`` at the stand-in folder
    unless it is set. Default: stand-ins are forbidden exactly where fallbacks are. Returns the policy.
    """
    policy = profile.get("standin_weights") or ("allow" if profile.get("allow_fallbacks", True) else "forbid")
    os.environ["DFIG_STANDIN"] = policy
    if policy == "require":
        from dfig.standin import default_dir

        os.environ.setdefault("DFIG_WEIGHTS", str(default_dir()))
    return policy


#: the keys a profile may have (run_all.py reads each of them; anything else is a typo)
PROFILE_KEYS = frozenset(
    {"name", "description", "base", "common", "runs", "params", "grids", "allow_fallbacks", "publish_pdf",
     "default_data", "require_cuda", "required_weights", "standin_weights", "expect_data"}
)  # fmt: skip
#: the keys of one entry of ``runs:``
RUN_KEYS = frozenset({"notebook", "params", "grid"})


def check_profile(data: Any, where: str) -> dict[str, Any]:
    """A loaded profile, or a one-line ``SystemExit`` saying what is missing (empty file, no name, no runs).

    Arguments: ``data`` what the YAML held; ``where`` the profile name or path. Returns: ``data``.
    """
    hint = "see profiles/smoke.yaml"
    if data is None:
        raise SystemExit(f"profile {where} is empty: it needs at least `name:` and `runs:` ({hint})")
    if not isinstance(data, dict):
        raise SystemExit(
            f"profile {where} must be a YAML mapping with `name:` and `runs:`, "
            f"found a {type(data).__name__} ({hint})"
        )
    if not isinstance(data.get("name"), str) or not data["name"].strip():
        raise SystemExit(
            f"profile {where} has no `name:` (it names reports/<name>/ and work/<name>/): "
            f"add e.g. `name: {Path(where).stem}`"
        )
    runs = data.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and r.get("notebook") for r in runs):
        raise SystemExit(f"profile {where}: `runs:` must be a list of entries with `notebook:` ({hint})")
    unknown = sorted(set(data) - PROFILE_KEYS) + sorted({k for r in runs for k in r} - RUN_KEYS)
    if unknown:
        raise SystemExit(
            f"profile {where}: unknown key(s) {unknown}; a profile has {sorted(PROFILE_KEYS)} and each "
            f"entry of `runs:` has {sorted(RUN_KEYS)} (notebook parameters go under `params:`/`grid:`)"
        )
    return data


#: how a parameters cell documents the allowed values: ``x = "a"   # one of: a, b, c; what they mean``
CHOICES_RE = re.compile(r"one of:\s*([^;]*)")


def parse_choices(comment: str) -> list[Any] | None:
    """The values a parameter's comment allows (``# one of: res50, mobilev2, res34; ...``), or None."""
    m = CHOICES_RE.search(comment or "")
    if not m:
        return None
    return [yaml.safe_load(v.strip()) for v in m.group(1).split(",") if v.strip()]


@functools.cache
def notebook_parameters(nb: str) -> dict[str, dict[str, Any]]:
    """A notebook's parameters (papermill's ``inspect_notebook``): default value, its type, choices, help."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(NOTEBOOKS / f"{nb}.ipynb")).items():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            default = None
        out[name] = {
            "default": default,
            "choices": parse_choices(info.get("help", "")),
            "help": info.get("help"),
        }
    return out


def check_value(value: Any, spec: dict[str, Any]) -> tuple[Any, str | None]:
    """``(value, None)`` when ``value`` fits the notebook default's type and its choices, else
    ``(value, why)``; a float parameter accepts YAML strings such as ``1e-4`` (converted)."""
    choices, default = spec["choices"], spec["default"]
    if choices is not None:
        ok = str(value) in {str(c) for c in choices}
        return value, None if ok else f"must be one of {', '.join(map(str, choices))}"
    if default is None:
        return value, None
    want = type(default)
    if want is float and isinstance(value, str):
        try:
            return float(value), None
        except ValueError:
            pass
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return value, None
    if isinstance(value, want) and (want is bool or not isinstance(value, bool)):
        return value, None
    quote = " (quote it to pass text)" if want is str else ""
    return (
        value,
        f"must be of type {want.__name__} like the notebook's default {default!r}, got {type(value).__name__}{quote}",
    )


def check_values(runs: list[dict[str, Any]], overrides: dict[str, Any]) -> None:
    """Check every run's parameter values (profile and ``--set``) against its notebook, before running.

    Raises ``SystemExit`` with one line per bad value: where it came from, the notebook, what is allowed.
    """
    errors: dict[str, None] = {}
    for r in runs:
        params = notebook_parameters(r["notebook"])
        for k, v in list(r["parameters"].items()):
            if k not in params:
                continue
            r["parameters"][k], why = check_value(v, params[k])
            if why:
                src = "--set" if k in overrides else "profile"
                errors[f"{src} {k}={v!r} ({r['notebook']}): {why}"] = None
    if not errors:
        errors = dict.fromkeys(profilecheck.check_ranges(runs, overrides))
    if errors:
        raise SystemExit("parameter values rejected: " + "\n  ".join(errors))


def run_tag(nb: str, item: dict[str, Any]) -> str:
    """Name of one run: the notebook, plus the training run name or the grid item's output folder."""
    if not item:
        return nb
    if nb == "04_train":
        return f"{nb}__{train_run_name(item)}"
    outputs = [str(v) for k, v in item.items() if k.endswith("_name")]  # e.g. faces_name, lnp_name
    return nb + "__" + "_".join(outputs or [f"{v}" for v in item.values()])


def expand(profile: dict[str, Any], data: str | None, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """The list of runs: notebook, parameters (common + notebook + grid item + overrides), output name."""
    runs = []
    common = dict(profile.get("common", {}))
    if data:
        # no machine path in the parameters: relative to the repository (or $NAME/...), see dfig.paths
        common["data_root"] = paths.portable(data_check.data_tree(data))
    elif not common.get("data_root") and profile.get("default_data") == "sample":
        common["data_root"] = paths.portable(paths.sample_data_dir())  # paper-standin: the face sample
    for spec in profile["runs"]:
        nb = spec["notebook"]
        for item in spec.get("grid", [{}]):
            params = {**common, **spec.get("params", {}), **item, **overrides}
            strict = set(spec.get("params", {})) | set(item)
            runs.append({"notebook": nb, "name": run_tag(nb, item), "parameters": params, "strict": strict})
    return runs


def check_parameters(
    runs: list[dict[str, Any]], overrides: dict[str, Any] | None = None, source: str = ""
) -> None:
    """Check every run's parameter names against its notebook (papermill's inspect), before running.

    ``source`` (the profile file) is named in the error for a name the profile gives.

    Names a profile gives a notebook or grid point must be declared by that notebook; names from
    ``common`` (and ``--set``) go to the notebooks that declare them, and must be declared by at
    least one. Undeclared common names are dropped from a run's parameters.
    """
    import papermill as pm

    declared: dict[str, set[str]] = {}
    errors = []
    used: set[str] = set()
    for r in runs:
        nb = r["notebook"]
        path = NOTEBOOKS / f"{nb}.ipynb"
        if not path.exists():
            errors.append(f"{r['name']}: notebook {path} not found")
            continue
        if nb not in declared:
            declared[nb] = set(pm.inspect_notebook(str(path)))
        strict = r.get("strict", set(r["parameters"]))
        unknown = sorted(set(strict) - declared[nb])
        if unknown:
            where = f"profile {source}: " if source else ""
            errors.append(
                f"{where}{r['name']}: {path.name} has no parameter(s) {unknown}; it declares {sorted(declared[nb])}"
            )
        r["parameters"] = {k: v for k, v in r["parameters"].items() if k in declared[nb]}
        used |= set(r["parameters"])
    for k in sorted(set(overrides or {}) - used):
        errors.append(f"--set {k}: no notebook in this selection declares {k!r}")
    if errors:
        raise SystemExit("parameter check failed:\n  " + "\n  ".join(errors))


def preflight(profile: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """The paper profile refuses to start unless every official file, the data and a GPU are there."""
    if profile.get("allow_fallbacks", True):
        return
    from dfig import weights

    problems = []
    for name in profile.get("required_weights", []):
        try:
            weights.locate(name)
        except (FileNotFoundError, ValueError) as e:
            problems.append(str(e))
    data = runs[0]["parameters"].get("data_root") if runs else None
    if not data or not paths.resolve(data).is_dir():
        problems.append(
            f"data_root {data!r} is not a folder: pass --data /path/to/140k "
            "laid out as {train,val|valid,test}/{real,fake}/* (README, Data)"
        )
    if profile.get("require_cuda"):
        import torch

        if not torch.cuda.is_available():
            problems.append(
                "no CUDA GPU visible: the paper profile trains ResNet50/MobileNetV2 on 100k images"
            )
    if problems and profile.get("standin_weights") == "require":
        problems.append(
            f"write the stand-ins with `python -m dfig.weights standin --out {paths.weights_dir()} "
            f"--only {','.join(profile.get('required_weights', []))}`"
        )
    if problems:
        raise SystemExit(
            f"profile {profile['name']!r} cannot start (it never falls back):\n- " + "\n- ".join(problems)
        )


def fallback_lines(ipynb: Path) -> list[str]:
    """One line per distinct fallback or stand-in announced in an executed notebook's outputs.

    Arguments: ``ipynb``, the executed copy. Returns: the warning texts (``FALLBACK [stage]: ...``
    as :func:`dfig.fallback.use_fallback` words them, and any ``STAND-IN ...`` line), in order, each
    without its final parenthesised reason (kept in the stage records and the manifest).
    """
    import json
    import re

    pat = re.compile(r"((?:FALLBACK|STAND-IN) \[[^\]]*\]:.*)")
    found: list[str] = []
    for cell in json.loads(ipynb.read_text(encoding="utf-8")).get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            for line in (text if isinstance(text, str) else "".join(text)).splitlines():
                m = pat.search(line)
                if m and without_reason(m.group(1).strip()) not in found:
                    found.append(without_reason(m.group(1).strip()))
    return found


def without_reason(text: str) -> str:
    """``text`` without its final parenthesised group (the long reason; the manifest keeps it)."""
    if not text.endswith(")"):
        return text
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[:i].rstrip()
    return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs, values parsed as YAML (numbers, bools, lists)."""
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--set expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke", help="profile name in profiles/ (smoke, sample, paper)")
    ap.add_argument(
        "--data",
        help="data root {train,val|valid,test}/{real,fake}/*, or a folder above it (overrides the profile's)",
    )
    ap.add_argument(
        "--accept-subset",
        action="store_true",
        help="run on fewer files than the profile's expect_data on purpose",
    )
    ap.add_argument("--only", action="append", default=[], help="run only runs whose name starts with this")
    ap.add_argument("--list", action="store_true", help="list the runs and their parameters, run nothing")
    ap.add_argument("--paper-only", action="store_true", help="rebuild DFIG_v2.pdf from existing results")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter in every run that declares it",
    )
    pipeline_cli.add_arguments(ap)
    args = ap.parse_args(argv)

    profile = check_profile(load_profile(args.profile), args.profile)
    os.environ["DFIG_PROFILE"] = profile["name"]
    apply_weights_policy(profile)
    if args.paper_only:
        from dfig.report import paper

        runstate.acquire(profile["name"], ["--paper-only"], "")
        pdf = paper.build_paper(profile["name"], publish=profile.get("publish_pdf", False))
        runstate.release(profile["name"])
        print(f"paper rebuilt: {pdf}")
        return 0

    runs = expand(profile, args.data, parse_overrides(args.set))
    check_parameters(runs, parse_overrides(args.set), source=profile_source(args.profile))
    check_values(runs, parse_overrides(args.set))
    if args.only:
        runs = [r for r in runs if any(r["name"].startswith(o) for o in args.only)]
        if not runs:
            raise SystemExit(f"--only {args.only} matches no run; see --list")
    if args.list:
        for i, r in enumerate(runs, 1):
            print(f"{i:2d}. {r['name']}\n    {r['parameters']}")
        return 0
    executor = pipeline_cli.make_executor(args, profile)
    refusal = pipeline_cli.print_plan(profile, runs, args, executor)
    if args.plan:
        return 0
    preflight(profile, runs)
    runstate.check_writable(profile["name"])  # before anything writes (the data check's record first)
    data_check.check_for_run(profile, runs[0]["parameters"].get("data_root"), args.accept_subset)
    if refusal:
        raise SystemExit(refusal)
    return run_runs(profile, runs, executor, partial=bool(args.only))


def run_runs(profile: dict[str, Any], runs: list[dict[str, Any]], executor: Any, partial: bool) -> int:
    """Run ``runs`` on ``executor`` in dependency order (:mod:`dfig.pipeline`), one console line per start
    and per end, the manifest kept current; then the closing lines. Returns: the exit code."""
    t_start = time.time()
    started = datetime.now().astimezone().isoformat(timespec="microseconds")  # identifies this invocation
    runstate.acquire(profile["name"], [r["name"] for r in runs], started)  # one run_all per profile
    manifest.write_manifest(profile, [], 0, "running", partial=partial, started=started)
    entries: list[dict[str, Any]] = []
    index = {r["name"]: i for i, r in enumerate(runs, 1)}
    n = len(runs)
    print(f"run_all: profile {profile['name']!r}, {n} runs -> {paths.reports_dir(profile['name'])}")
    print(f"run_all: {executor.describe()}", flush=True)

    def on_start(spec: dict[str, Any], slot: Any) -> None:
        print(f"[{index[spec['name']]}/{n}] {spec['name']} ... ({slot.label()})", flush=True)

    def on_done(e: dict[str, Any]) -> None:
        entries.append(e)
        if e["status"] != "ok":
            print(f"[{index[e['run']]}/{n}] {e['run']} FAILED after {e['wall_seconds']:.0f}s", flush=True)
            return
        print(f"[{index[e['run']]}/{n}] {e['run']} ok in {e['seconds']:.0f}s", flush=True)
        for line in fallback_lines(paths.resolve(e["output"])):
            kind = "StandinWarning" if line.startswith("STAND-IN") else "FallbackWarning"
            print(f"    {kind}: {line}", flush=True)
        # keep the manifest current, so that the paper notebook (last) sees this invocation's runs
        manifest.write_manifest(
            profile, entries, time.time() - t_start, "running", partial=partial, started=started
        )

    specs = [make_spec(r, profile, NOTEBOOKS) for r in runs]
    out = run_graph(specs, dependencies(runs), executor, on_start, on_done)
    status = 1 if out.failed else 0
    for f in out.failed:
        print(
            f"FAILED: {f['run']} ({f['notebook']}), {f['error']}\n  executed copy with the traceback: {f['output']}"
            + (f"\n  job log: {f['log']}" if f.get("log") else ""),
            file=sys.stderr,
        )
    for name, why in out.not_run.items():
        print(f"not run: {name} (needs {why}, which failed)", file=sys.stderr)
    man = manifest.write_manifest(profile, entries, out.wall, status, partial=partial, started=started)
    print(f"manifest: {man} ({out.wall:.0f}s wall, {out.run_seconds:.0f}s summed over the runs)")
    rep = paths.reports_dir(profile["name"])
    print(f"reports:  {rep} (figures/, tables/, metrics/, executed/)")
    print(paper_line(profile, runs, status, partial=partial))
    runstate.release(profile["name"])
    return status


def paper_line(profile: dict[str, Any], runs: list[dict[str, Any]], status: int, partial: bool) -> str:
    """The console's last line: where the paper is, and whether it reflects this invocation's results.

    A partial run (``--only``) that did not include 06_paper rebuilds the PDF from the current results
    (as ``--paper-only`` does), so the paper never lags behind a new figure or table; a failed run
    leaves it as it was and says it is stale. Returns: the line to print.
    """
    pdf = paths.reports_dir(profile["name"]) / "DFIG_v2.pdf"
    published = f" (published to {paths.paper_pdf()})" if profile.get("publish_pdf") else ""
    paper_ran = any(r["notebook"] == "06_paper" for r in runs)
    if status != 0:
        return (
            f"paper:    {pdf} is STALE: this run failed before the paper was rebuilt"
            if pdf.exists()
            else "paper:    not built (the run failed)"
        )
    if partial and not paper_ran and pdf.exists():
        from dfig.report import paper

        try:
            pdf = paper.build_paper(profile["name"], publish=profile.get("publish_pdf", False))
        except OSError as e:  # a full disk or read-only folder: one line, the runs' results stand
            from dfig.clierrors import one_line

            raise SystemExit(f"the runs finished, but rebuilding the paper failed: {one_line(e)}") from None
        return f"paper:    {pdf} rebuilt from the current results{published}"
    return f"paper:    {pdf}{published}" if pdf.exists() else "paper:    not built (06_paper did not run)"


def cli(argv: list[str] | None = None) -> int:
    """:func:`main` for the shell: a refusal (``SystemExit`` with a message) prints ``error: ...``, exit code 2."""
    try:
        return main(argv)
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        print(f"error: {e.code}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, runstate.RunInterrupted) as e:
        marked = runstate.abandon(f"interrupted ({type(e).__name__}: {e or 'Ctrl-C'})")
        print(
            f"error: interrupted; {', '.join(map(str, marked)) or 'the manifest'} says incomplete",
            file=sys.stderr,
        )
        return 130
    finally:
        runstate.abandon("run_all ended with an error before finishing")  # no-op after a normal end


if __name__ == "__main__":
    sys.exit(cli())
