# Two commands for a fresh machine: `make run` (set up, train the small default job on 2 ranks)
# and `make test` (set up, run the whole test suite). Set-up is idempotent.
VENV    ?= .venv
PYTHON  ?= python3
# The mpich extra brings MPI from PyPI; on a cluster with a site MPI use `make ... EXTRAS=dev,box2d`
# after building mpi4py against it (see README). box2d: LunarLander and BipedalWalker (jobs/*.yaml);
# tensorboard: run.tensorboard's event files.
EXTRAS  ?= mpich,dev,report,box2d,tensorboard,maze
RANKS   ?= 2
JOB     ?= jobs/default.yaml
# Empty: the CLI's own default, results/runs/<job file name>-seed<seed> (results/runs/default-seed0), which
# every example in the READMEs uses; with --resume auto a second `make run` continues or reports that run.
RUN_DIR ?=
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Debian libraries for offscreen MuJoCo rendering (eval --video) and shellcheck for the Slurm scripts'
# lint test. The Slurm tests install their own cluster packages (tests/cluster/start_slurm.sh).
# Installed only when running as root with apt-get.
DEBS    ?= libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri shellcheck

.PHONY: setup system-deps run test lint bench bench-learning clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

run: setup
	mpiexec -n $(RANKS) es-mpi train $(JOB) --resume auto$(if $(RUN_DIR), --run-dir $(RUN_DIR))

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  fi; \
	else echo "not root: skipping Debian packages ($(DEBS)); video and Slurm tests may skip"; fi

test: setup system-deps
	$(VENV)/bin/python -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check es_mpi tests bench results

# Benchmarks print their figures and write JSON to bench/out/; run them on an otherwise idle machine.
bench: setup
	$(VENV)/bin/python bench/throughput.py
	$(VENV)/bin/python bench/memory.py
	$(VENV)/bin/python bench/stragglers.py
	$(VENV)/bin/python bench/batched.py
	$(VENV)/bin/python bench/atari.py
	$(VENV)/bin/python bench/scaling.py

# Learning benchmarks: hours of training (run them on an idle machine; interrupted ones resume).
bench-learning: setup
	$(VENV)/bin/python bench/learning.py
	$(VENV)/bin/python bench/paper_table.py
	$(VENV)/bin/python bench/novelty_maze.py

clean:
	rm -rf $(VENV) build *.egg-info
