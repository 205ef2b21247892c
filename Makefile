# telesurg set-up and everyday commands. Each target creates .venv on first use and reinstalls
# only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,distributed]'
	touch $(STAMP)

# The video renderer draws with OpenGL on EGL (moderngl): Mesa's EGL and its llvmpipe driver, from
# Debian's packages when missing. `make test` needs them (the renderer's tests draw with them);
# `make demo` tries, and without them the video falls back to pybullet's slower TinyRenderer.
GL_LIBS := libegl1 libegl-mesa0 libgl1-mesa-dri
GL_STAMP := $(VENV)/.gl-libs
define GL_INSTALL
dpkg -s $(GL_LIBS) >/dev/null 2>&1 || { echo "installing Debian's $(GL_LIBS) (the video renderer's OpenGL)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(GL_LIBS) >/dev/null; }
endef

$(GL_STAMP): $(STAMP)
	@$(GL_INSTALL)
	touch $(GL_STAMP)

demo: $(STAMP)  ## run the headless teleoperation demo: robot server + scripted surgeon console over loopback
	@$(GL_INSTALL) || echo "could not install $(GL_LIBS): the video renders with pybullet's TinyRenderer (slower)"
	$(VENV)/bin/telesurg launch launch/local.toml --keep-open $(ARGS)

# System programs the tests start (tests/system_programs.py lists them; .ci/run fails when one is
# not a prerequisite of `test`), installed from Debian's packages when missing (needs root and apt).
# Defined before the `test` rule: make expands a rule's prerequisites where the rule is read.
CHROMIUM := /usr/bin/chromium
XVFB := /usr/bin/Xvfb
IP := /usr/sbin/ip
SYSTEM_PROGRAMS := $(CHROMIUM) $(XVFB) $(IP)
APT_INSTALL = @echo "installing Debian's $(1) (the tests start $@)"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null

test: $(STAMP) lint $(SYSTEM_PROGRAMS) $(GL_STAMP)  ## lint, then the whole test suite
	$(VENV)/bin/python -m pytest $(ARGS)

# The browser tests drive Debian's chromium through playwright (never `playwright install`, which
# downloads a browser of its own); the desktop tests run real windows on Xvfb.
$(CHROMIUM):
	$(call APT_INSTALL,chromium)

$(XVFB):
	$(call APT_INSTALL,xvfb)

# The off-loopback test puts the browser in a network namespace of its own (ip netns, a veth pair).
$(IP):
	$(call APT_INSTALL,iproute2)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

$(BENCH_STAMP): bench/requirements.txt constraints.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)  ## environment throughput next to panda-gym (baseline in its own .venv-bench)
	$(VENV)/bin/python bench/env_throughput.py --baseline-python $(BENCH_VENV)/bin/python $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) demo_out .pytest_cache .ruff_cache *.egg-info
