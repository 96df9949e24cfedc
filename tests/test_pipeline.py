"""dfig.pipeline: the run graph, parallel local runs (``run_all.py --jobs``), the plan, and Slurm.

The Slurm tests start a real one-node cluster (tests/slurmcluster.py) and skip with one line where the
packages are not installed. The smoke profile through Slurm is compared with the local smoke run of
``make test`` (``make slurm-smoke`` sets DFIG_LOCAL_SMOKE to its reports folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from dfig import paths
from dfig.pipeline import graph, plan
from dfig.pipeline.local import LocalExecutor
from dfig.pipeline.scheduler import run_graph

SMOKE_ORDER = ["01_segmentation", "02_lnp", "03_spectra", "04_train", "05_evaluate", "06_paper"]


def fake_runs(grid: dict[str, int]) -> list[dict]:
    return [{"name": f"{nb}__{i}", "notebook": nb} for nb, n in grid.items() for i in range(n)]


def test_graph_orders_notebooks_and_frees_grids() -> None:
    runs = fake_runs({"01_segmentation": 2, "02_lnp": 3, "03_spectra": 1, "04_train": 2, "05_evaluate": 1})
    deps = graph.dependencies(runs)
    assert deps["01_segmentation__1"] == []  # a grid's runs are independent of each other
    assert set(deps["02_lnp__0"]) == {"01_segmentation__0", "01_segmentation__1"}
    assert "03_spectra__0" not in deps["04_train__0"]  # 03 and 04 side by side
    assert set(deps["05_evaluate__0"]) >= {"03_spectra__0", "04_train__0", "04_train__1"}
    assert set(graph.dependents(deps, "02_lnp__1")) == {
        "03_spectra__0",
        "04_train__0",
        "04_train__1",
        "05_evaluate__0",
    }


def test_cpu_slots_never_oversubscribe_and_threads_are_fixed_by_the_run() -> None:
    ex = LocalExecutor(jobs=4, threads=1, cores=2)
    a, b = ex.acquire({"parameters": {}}), ex.acquire({"parameters": {}})
    assert a and b and ex.acquire({"parameters": {}}) is None  # 2 cores, 1 thread each
    ex.release(a)
    assert ex.acquire({"parameters": {"num_threads": 2}}) is None  # 2 threads do not fit beside b
    ex.release(b)
    big = ex.acquire({"parameters": {"num_threads": 2}})
    assert big.threads == 2 and big.env()["OMP_NUM_THREADS"] == "2"
    default = [LocalExecutor(jobs=j, cores=2).acquire({"parameters": {}}) for j in (1, 8)]
    assert [d.threads for d in default] == [2, 2] and default[0].env() == {}  # fixed, whatever --jobs


def test_each_gpu_run_gets_its_own_gpu() -> None:
    ex = LocalExecutor(jobs=8, gpus=["2", "5"])
    slots = [ex.acquire({"parameters": {}}) for _ in range(3)]
    assert [s.gpu for s in slots[:2]] == ["2", "5"] and slots[2] is None


class FakeExecutor:
    """Runs finish on the next poll; names in ``fail`` fail."""

    def __init__(self, fail: set[str]) -> None:
        self.fail, self.started = fail, []

    def acquire(self, spec):
        return LocalExecutor(jobs=1).acquire(spec)

    def release(self, slot) -> None:
        pass

    def start(self, spec, slot):
        self.started.append(spec["name"])
        return spec

    def poll(self, spec):
        ok = spec["name"] not in self.fail
        entry = {
            "run": spec["name"],
            "notebook": spec["notebook"],
            "status": "ok" if ok else "failed",
            "seconds": 1,
        }
        return {"ok": ok, "entry": entry}

    def cancel(self, handles) -> None:
        pass


def test_a_failure_stops_its_dependents_and_the_others_finish() -> None:
    runs = fake_runs({"01_segmentation": 1, "02_lnp": 2, "03_spectra": 1, "04_train": 2, "05_evaluate": 1})
    specs = [{**r, "parameters": {}} for r in runs]
    ex = FakeExecutor({"04_train__0"})
    out = run_graph(specs, graph.dependencies(runs), ex, lambda s, w: None, lambda e: None, poll_seconds=0)
    assert [e["run"] for e in out.failed] == ["04_train__0"]
    assert out.not_run == {"05_evaluate__0": "04_train__0"}
    assert {"03_spectra__0", "04_train__1"} <= set(ex.started) and "05_evaluate__0" not in ex.started


def write_notebook(folder: Path, name: str, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("profile = 'smoke'\nk = 0")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {name}\nWrites a stamp"),
        p,
        nbformat.v4.new_code_cell(code),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


STAMP = (
    "import os, time, json, pathlib\n"
    "t0 = time.time(); time.sleep(3)\n"
    "d = pathlib.Path(os.environ['STAMPS']); d.mkdir(exist_ok=True)\n"
    "(d / f'{os.environ[\"DFIG_NOTEBOOK\"]}.json').write_text(json.dumps("
    "{'start': t0, 'end': time.time(), 'omp': os.environ.get('OMP_NUM_THREADS')}))\n"
)


@pytest.fixture
def tiny_profile(run_all, tmp_path: Path, monkeypatch):
    """Two notebooks: 01_a (a grid of two runs, the second fails when k == 1 and fail is set), 02_b."""
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    write_notebook(nbdir, "01_a", STAMP + "assert not (k == 1 and os.environ.get('FAIL_K1')), 'k1 broke'\n")
    write_notebook(nbdir, "02_b", STAMP)
    prof = tmp_path / "tiny.yaml"
    prof.write_text(
        "name: tiny\ncommon: {profile: smoke}\nruns:\n"
        "  - notebook: 01_a\n    grid: [{k: 0}, {k: 1}]\n  - notebook: 02_b\n"
    )
    monkeypatch.setattr(run_all, "NOTEBOOKS", nbdir)
    monkeypatch.setenv("STAMPS", str(tmp_path / "stamps"))
    return prof, tmp_path / "stamps"


def stamps(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def test_jobs_2_runs_a_grid_at_once_and_keeps_the_order(run_all, tiny_profile, capsys) -> None:
    prof, st = tiny_profile
    assert run_all.main(["--profile", str(prof), "--jobs", "2", "--threads", "1"]) == 0
    s = stamps(st)
    a0, a1, b = s["01_a__0"], s["01_a__1"], s["02_b"]
    assert a0["start"] < a1["end"] and a1["start"] < a0["end"], "the two grid runs overlapped"
    assert b["start"] >= max(a0["end"], a1["end"]), "02 started after both 01 runs"
    assert {x["omp"] for x in s.values()} == {"1"}
    man = json.loads((paths.reports_dir("tiny") / "manifest.json").read_text())
    assert {r["worker"] for r in man["runs"]} == {"worker 0", "worker 1"}
    assert all(r["wall_seconds"] >= r["seconds"] for r in man["runs"])
    assert man["run_seconds"] == pytest.approx(sum(r["seconds"] for r in man["runs"]))
    out = capsys.readouterr().out
    assert out.count(" ok in ") == 3 and "summed over the runs" in out


def test_jobs_failure_names_run_and_notebook_and_stops_dependents(
    run_all, tiny_profile, monkeypatch, capsys
) -> None:
    prof, st = tiny_profile
    monkeypatch.setenv("FAIL_K1", "1")
    assert run_all.main(["--profile", str(prof), "--jobs", "2", "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "FAILED: 01_a__1 (notebooks/01_a.ipynb)" in err and "k1 broke" in err and "01_a__1.ipynb" in err
    assert "not run: 02_b (needs 01_a__1" in err
    assert set(stamps(st)) == {"01_a__0", "01_a__1"}  # the other grid run finished, 02_b never started


def synthetic_tree(root: Path, n: int) -> Path:
    """``n`` tiny PNG files laid out as {train,val,test}/{real,fake} (60/20/20 %)."""
    from PIL import Image

    png = root / "one.png"
    root.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(png)
    data = png.read_bytes()
    for i in range(n):
        split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
        d = root / split / ("real" if i % 2 else "fake")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:06d}.png").write_bytes(data)
    png.unlink()
    return root


def test_plan_counts_files_and_refuses_a_full_disk(run_all, tmp_path: Path, monkeypatch, capsys) -> None:
    from collections import namedtuple

    data = synthetic_tree(tmp_path / "data", 300)
    assert run_all.main(["--profile", "sample", "--data", str(data), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "01_segmentation | 2 | 180/60/60" in out and "plan: disk" in out and "free" in out
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(plan.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(SystemExit, match=r"(?i)not enough disk: .*work/sample/lnp.* 0\.0 MB free"):
        run_all.main(["--profile", "sample", "--data", str(data), "--only", "02_lnp"])
    assert not (paths.executed_dir("sample")).exists(), "nothing ran"


def test_plan_projects_time_from_device_check_rates(run_all, tmp_path: Path, capsys) -> None:
    data = synthetic_tree(tmp_path / "data", 1000)  # 600/200/200
    rates = tmp_path / "device_check.json"
    bench = {"sam": {"ours_img_s": 10.0}, "lnp": {"ours_img_s": 100.0}, "train": {"ours_img_s": 50.0}}
    rates.write_text(json.dumps({"bench": bench}))
    prof = run_all.load_profile("paper")
    runs = run_all.expand(prof, str(data), {})
    p = plan.make_plan(prof, runs, rates_file=str(rates), workers=4)
    st = {s["notebook"]: s for s in p["stages"]}
    assert st["01_segmentation"]["seconds_1"] == pytest.approx(1000 / 10)  # only the SAM run costs SAM time
    assert st["02_lnp"]["seconds_1"] == pytest.approx(3 * 1000 / 100)
    assert st["02_lnp"]["seconds_n"] == pytest.approx(1000 / 100)  # three trees on four GPUs
    one = 100 * (600 + 200 / 3) / 50  # 100 epochs x (train + val/3) / rate
    assert st["04_train"]["seconds_1"] == pytest.approx(19 * one)
    assert st["04_train"]["seconds_n"] == pytest.approx(5 * one)  # 19 runs on 4 GPUs: 5 rounds
    out = plan.format_plan(p)
    assert "1 GPU" in out and "4 GPUs" in out and "04_train | 19 |" in out


def test_plan_on_a_rerun_counts_what_exists(tmp_path: Path) -> None:
    tree = synthetic_tree(tmp_path / "faces", 10)
    need = plan.tree_need(tree, 25, "faces", 0.0)
    each = need["bytes_per_file"]
    assert need["bytes"] == pytest.approx(each * 15)  # only the 15 missing files need disk
    assert need["how"].startswith("10 of 25 files exist") and "measured on" in need["how"]


def test_plan_counts_a_valid_folder_as_the_val_split(tmp_path: Path) -> None:
    tree = synthetic_tree(tmp_path / "data", 10)  # 6/2/2
    (tree / "val").rename(tree / "valid")  # the 140k download's name
    assert plan.count_split_files(tree) == {"train": 6, "val": 2, "test": 2}
