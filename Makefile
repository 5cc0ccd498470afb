# Set-up on a fresh machine is two commands: `make run` and `make test`; both create .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# the PID of the shell that names it makes two `make run` in the same second use two folders
RUN_DIR ?= runs/cartpole-$(shell date +%Y%m%d-%H%M%S)-$(shell echo $$$$)

.PHONY: venv run test bench bench-server bench-scaling proto clean e2e-k8s e2e-k8s-sharded

# torch first, pinned to the CPU wheel: any looser spec pulls gigabytes of CUDA wheels.
$(STAMP): pyproject.toml setup.py ps/core/_kernels.c ps/service/_bytesbuf.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench,atari,video,box2d]'
	touch $(STAMP)

venv: $(STAMP)

# The embedded default: one local parameter server and 2 local workers over loopback gRPC,
# training CartPole-v1 until the mean return of the last 100 episodes reaches 475.
run: venv
	$(BIN)/ps-serve --env CartPole-v1 --algo a3c --port 0 --run-dir $(RUN_DIR) --target-return 475 --local-workers 2

# Two passes: most tests two at a time (they wait on subprocesses and timeouts as much as they
# compute), then alone the few marked serial, whose assertions compare rates or wall-clock budgets.
test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 -m "not serial" --durations=25 tests
	$(BIN)/python -m pytest -q -p no:cacheprovider -m serial --durations=10 tests

bench: venv
	$(BIN)/python -m bench.cartpole

bench-server: venv
	$(BIN)/python -m bench.server

bench-scaling: venv
	$(BIN)/python -m bench.scaling

# deploy/ on a real single-node Kubernetes (v1.20, ../shared/k8s-lab; root): builds both images, runs the
# lab, checks a whole run's lifecycle and tears it all down (tests/e2e/k8s_e2e.py). Not part of `make test`.
e2e-k8s: venv
	$(BIN)/python tests/e2e/k8s_e2e.py

# deploy/k8s/sharded the same way: 2 shards of a StatefulSet, one killed with SIGKILL mid-run (tests/e2e/k8s_sharded_e2e.py).
e2e-k8s-sharded: venv
	$(BIN)/python tests/e2e/k8s_sharded_e2e.py

proto: venv
	$(BIN)/python -m tools.gen_proto

clean:
	rm -rf $(VENV) runs build *.egg-info
