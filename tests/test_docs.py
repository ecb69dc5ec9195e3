"""The documents cannot drift from the code: the commands of README.md and results/README.md run here as
written, the files they create are the ones the documents describe, and docs/job-keys.md is the schema.

A fenced block preceded by `<!-- test -->` runs line by line (sh) or as a script (python), in document
order, in a temporary copy of the repository's jobs/ and results/ scripts whose jobs/default.yaml is shrunk
to seconds (two generations of two pairs, 20-step episodes): the commands, file names and paths stay as
written. `<!-- test: needs pandas -->` runs only where pandas is installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from helpers import ROOT, mpiexec, run_cli

from es_mpi.commands.keys import REGENERATE, keys_markdown
from es_mpi.runs.job import job_from_dict

DOCS = ("README.md", "results/README.md")
BLOCK = re.compile(r"^<!-- test(?:: needs (?P<needs>[\w ,]+))? -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```$",
                   re.S | re.M)
SHRUNK = {"run": {"generations": 2}, "es": {"pairs": 2, "noise_table_size": 100_000},
          "policy": {"hidden": [4]}, "env": {"kwargs": {"max_episode_steps": 20}}}
BIN = Path(sys.executable).parent


@dataclass
class Step:
    doc: str
    line: int
    lang: str
    code: str
    needs: list[str]
    proc: subprocess.CompletedProcess | None = None

    def command(self) -> str:
        """The shell line without its comment."""
        return self.code.split("#")[0].strip()

    def where(self) -> str:
        return f"{self.doc}:{self.line}: {self.code.splitlines()[0]}"


def marked_steps(doc: str) -> list[Step]:
    text = (ROOT / doc).read_text(encoding="utf-8")
    steps = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("body")) + 1
        needs = [n.strip() for n in (m["needs"] or "").split(",") if n.strip()]
        if m["lang"] == "python":
            steps.append(Step(doc, line, "python", m["body"], needs))
            continue
        assert m["lang"] == "sh", f"{doc}:{line}: a tested block must be sh or python, got {m['lang']}"
        for i, command in enumerate(m["body"].splitlines()):
            if command.strip() and not command.lstrip().startswith("#"):
                steps.append(Step(doc, line + i, "sh", command, needs))
    return steps


def shrunk_checkout(root: Path) -> None:
    """jobs/ and results/*.py as in the repository, jobs/default.yaml shrunk to seconds."""
    shutil.copytree(ROOT / "jobs", root / "jobs")
    (root / "results").mkdir()
    for script in (ROOT / "results").glob("*.py"):
        shutil.copy(script, root / "results")
    job = yaml.safe_load((ROOT / "jobs" / "default.yaml").read_text())
    for section, values in SHRUNK.items():
        job.setdefault(section, {}).update(values)
    (root / "jobs" / "default.yaml").write_text(yaml.safe_dump(job))


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, list[Step]]:
    mpiexec()  # skips without an MPI launcher
    pytest.importorskip("matplotlib")  # es-mpi report
    root = tmp_path_factory.mktemp("checkout")
    shrunk_checkout(root)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    steps = [s for doc in DOCS for s in marked_steps(doc)]
    for step in steps:
        if any(importlib.util.find_spec(n) is None for n in step.needs):
            continue
        if step.lang == "sh":
            cmd = ["bash", "-c", step.code]
        else:
            script = root / f"snippet_{step.line}.py"
            script.write_text(step.code)
            cmd = [sys.executable, str(script)]
        step.proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=180,
                                   env=env)
        if step.proc.returncode != 0:
            break  # later steps need this one's output
    return root, steps


def train_steps(steps: list[Step]) -> list[Step]:
    return [s for s in steps if s.lang == "sh" and "es-mpi train" in s.code]


def test_documented_commands_run_as_written(ran):
    _, steps = ran
    for step in steps:
        if step.proc is not None:
            assert step.proc.returncode == 0, f"{step.where()}\n{step.proc.stdout[-2000:]}{step.proc.stderr[-3000:]}"
    run = [s.code for s in steps if s.proc is not None]
    for needed in ("es-mpi train", "mpiexec -n 2 es-mpi train", "es-mpi eval", "es-mpi report", "h5py.File"):
        assert any(needed in code for code in run), f"no tested block of {DOCS} runs {needed!r}"


@pytest.mark.parametrize("doc", DOCS)
def test_blocks_that_need_extra_packages(ran, doc):
    _, steps = ran
    skipped = [s for s in steps if s.doc == doc and s.proc is None and s.needs]
    if skipped:
        pytest.skip(", ".join(f"{s.where()} needs {' '.join(s.needs)}" for s in skipped))


def test_make_run_runs_the_first_documented_training(ran):
    if not shutil.which("make"):
        pytest.skip("no make")
    _, steps = ran
    recipe = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
    made = [line.strip() for line in recipe.splitlines() if "es-mpi train" in line]
    documented = train_steps(steps)[0].command()
    assert made == [documented], f"make -n run gives {made}, README.md's first training is {documented!r}"


def test_second_training_reports_the_finished_run(ran):
    _, steps = ran
    first, again = train_steps(steps)[:2]
    assert first.command() == again.command() and again.proc is not None
    assert re.search(r"^gen ", first.proc.stdout, re.M), first.proc.stdout
    assert not re.search(r"^gen ", again.proc.stdout, re.M), f"{again.where()} trained again:\n{again.proc.stdout}"
    assert "done:" in again.proc.stdout, again.proc.stdout


def test_every_default_run_path_in_the_documents_exists(ran):
    root, _ = ran
    mentioned = {p.rstrip("/.") for doc in DOCS
                 for p in re.findall(r"results/(?:runs/default[^\s`'\")\]]*|report/)", (ROOT / doc).read_text())}
    assert "results/runs/default-seed0" in mentioned
    missing = sorted(p for p in mentioned if not (root / p).exists())
    assert not missing, f"paths in {DOCS} that the documented commands do not create: {missing}"
    assert (root / "results/report/summary.md").exists()


def section(doc: str, heading: str) -> str:
    text = (ROOT / doc).read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start: end if end > 0 else None]


def test_results_readme_documents_every_dataset_and_attribute(ran):
    root, _ = ran
    run = root / "results/runs/default-seed0"
    for name, heading in (("metrics.h5", "metrics.h5"), ("checkpoint.h5", "checkpoint.h5")):
        with h5py.File(run / name, "r") as f:
            paths: list[str] = []
            f.visit(paths.append)
            attrs = set(f.attrs).union(*(f[p].attrs for p in paths)) - {"units", "description"}
        text = section("results/README.md", heading)  # `units` and `description`: said once for all
        missing = [f"/{p}" for p in paths if f"/{p}" not in text and f"`{p}`" not in text]
        missing += sorted(a for a in attrs if f"`{a}`" not in text)
        assert not missing, f"results/README.md, section {heading}, lacks {missing}"


def test_generations_are_numbered_as_results_readme_states(ran):
    root, steps = ran
    run = root / "results/runs/default-seed0"
    with h5py.File(run / "metrics.h5", "r") as f:
        index = f["generation"][...]
    with h5py.File(run / "checkpoint.h5", "r") as f:
        completed = int(f.attrs["generation"])
    assert np.array_equal(index, np.arange(completed)), (index, completed)
    first = train_steps(steps)[0].proc.stdout
    shown = [int(m) for m in re.findall(r"^gen +(\d+)/", first, re.M)]
    assert shown == list(range(SHRUNK["run"]["generations"])), f"progress lines count {shown}, metrics.h5 from 0"


def test_progress_line_example_has_the_real_layout(ran):
    _, steps = ran
    real = re.findall(r"^gen .*$", train_steps(steps)[0].proc.stdout, re.M)[0]
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"^```\n(gen .*)\n```$", readme, re.M)[1]

    def shape(line: str) -> str:
        return re.sub(r" +", " ", re.sub(r"-?[\d][\d,.]*", "N", line))

    assert shape(example) == shape(real), f"README.md's progress line\n{example}\nreal\n{real}"


def test_job_keys_reference_is_in_step_with_the_schema():
    path = ROOT / "docs" / "job-keys.md"
    assert path.read_text(encoding="utf-8") == keys_markdown(), f"{path} is out of step; run `{REGENERATE}`"
    proc = run_cli(["keys"], timeout=60)
    assert proc.returncode == 0 and proc.stdout == keys_markdown(), proc.stderr


def test_job_keys_reference_lists_every_key_of_a_job():
    def dotted(d: dict, prefix: str = "") -> list[str]:
        return [k for name, v in d.items() for k in
                (dotted(v, f"{prefix}{name}.") if isinstance(v, dict) and name != "kwargs" else [prefix + name])]

    keys = dotted(job_from_dict({"env": {"id": "HalfCheetah-v5"}}, "test").to_dict())
    text = keys_markdown()
    assert "`env.id` | required" in text
    assert not [k for k in keys if f"| `{k}` |" not in text]


def test_evaluation_gives_the_same_returns_on_any_rank_count(ran):
    _, steps = ran
    evals = [s for s in steps if s.lang == "sh" and "es-mpi eval" in s.code and s.proc is not None]
    assert len(evals) >= 2 and any("mpiexec" in s.code for s in evals)
    returns = {re.search(r"^return mean .*$", s.proc.stdout, re.M)[0] for s in evals}
    assert len(returns) == 1, returns


def test_readme_shows_the_default_job_as_it_is():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"`jobs/default\.yaml`:\n\n```yaml\n(.*?)^```$", readme, re.S | re.M)[1]
    assert yaml.safe_load(shown) == yaml.safe_load((ROOT / "jobs" / "default.yaml").read_text())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_point_at_files_and_headings():
    docs = [ROOT / d for d in DOCS] + sorted((ROOT / "docs").glob("*.md"))
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"\w+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", file.read_text(encoding="utf-8"), re.M)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken
