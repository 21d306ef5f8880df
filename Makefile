# qgactl: `make test` and `make demo` work on a fresh Debian 12 machine as root.
# They install what they need (apt packages, a venv, the project) before doing anything.

# Debian's python3, not whatever `python3` is on PATH: it is the interpreter a KVM host has,
# and it is built with PGO and LTO: `qgactl --help` takes 42 ms on it against 48 ms on a
# pyenv build (shared libpython, no PGO; medians of 100 shuffled runs). PYTHON=... overrides.
PYTHON ?= /usr/bin/python3
VENV   := .venv
PY     := $(VENV)/bin/python
QGACTL := $(VENV)/bin/qgactl
DEMO_DOMAIN ?= qgactl-demo

.PHONY: deps venv test test-fast test-install lint demo demo-stop bench completions \
        install-completions deb clean collection

# Debian packages: qemu, qemu-ga, libvirtd, the kernel tools for the lab guest, shells.
deps:
	bash lab/install-deps.sh

# The venv, reinstalled when pyproject.toml changes (libvirt-python builds against libvirt-dev).
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml | deps
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat mode: a plain path entry, not an import hook that costs ~9 ms every start
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

lint: venv
	$(VENV)/bin/ruff check qgactl tests lab bench
	$(VENV)/bin/ruff format --check qgactl
	$(VENV)/bin/mypy

# The whole suite: pure and CLI tests, a real host-run qemu-ga, real guests under plain QEMU
# and under libvirtd (built and booted by the tests' own fixtures).
test: deps venv lint
	$(PY) -m pytest

# Without the guests and without building packages: about ten seconds.
test-fast: venv
	$(PY) -m pytest -m "not vm and not install"

# The INSTALLED qgactl: the wheel, the sdist and the .deb built, installed and run.
test-install: venv
	$(PY) -m pytest -m install

# Every step must pass on an admin's real host, whatever else runs there: only `ping --all`
# looks at other domains, and their failures are reported, not fatal (tests/vm/test_demo.py).
demo: deps venv
	$(PY) lab/lab.py demo-start $(DEMO_DOMAIN)
	$(QGACTL) -o table domains
	$(QGACTL) -o table ping $(DEMO_DOMAIN)
	$(QGACTL) -o table --transport socket ping $(DEMO_DOMAIN)
	$(QGACTL) -o table osinfo $(DEMO_DOMAIN)
	$(QGACTL) -o table fsinfo $(DEMO_DOMAIN)
	$(QGACTL) -o table doctor $(DEMO_DOMAIN)
	$(QGACTL) -o table info $(DEMO_DOMAIN)
	$(QGACTL) -o table guestinfo $(DEMO_DOMAIN) --os --users --timezone --net --vcpus
	$(QGACTL) -o table time $(DEMO_DOMAIN)
	@echo "Every running domain of this host: another guest still booting, or without an agent,"
	@echo "fails its row and makes the exit status 4; that is the host's state, not the demo's."
	$(QGACTL) -o table ping --all || echo "(ping --all exited $$?: see the failures above)"
	$(QGACTL) exec $(DEMO_DOMAIN) -- uname -a
	$(QGACTL) -o json exec $(DEMO_DOMAIN) -s -- 'echo "hello from $$(hostname)"; exit 3' || true
	@echo "12 MB of exec output through libvirt (past its 10 MiB cliff), counted on the host:"
	$(QGACTL) exec $(DEMO_DOMAIN) -- head -c 12000000 /dev/zero | wc -c
	$(QGACTL) cp README.md $(DEMO_DOMAIN):/tmp/
	$(QGACTL) cat $(DEMO_DOMAIN) /tmp/README.md | cmp - README.md && echo "cp + cat: identical"
	@echo "The demo guest keeps running; stop it with: make demo-stop"

demo-stop: venv
	$(PY) lab/lab.py stop $(DEMO_DOMAIN)

bench: deps venv
	$(PY) bench/run.py

completions: venv
	$(PY) lab/write_completions.py completions

# The committed scripts (a test keeps them fresh), where each shell looks for them by name.
install-completions:
	install -D -m 644 completions/qgactl.bash $(DESTDIR)/usr/share/bash-completion/completions/qgactl
	install -D -m 644 completions/_qgactl $(DESTDIR)/usr/share/zsh/vendor-completions/_qgactl
	install -D -m 644 completions/qgactl.fish $(DESTDIR)/usr/share/fish/vendor_completions.d/qgactl.fish

# dist/qgactl_<version>_all.deb, built by Debian's own tooling (debian/, dh-python) from a clean
# copy of the tree (lab/srctree.py) in dist/deb/, so that dpkg-buildpackage's ../ (.changes,
# .buildinfo) is under dist/ too. PATH is the system's: pybuild calls `python3.11` through PATH,
# and pyenv's has no `build` module. The build dependencies (debian/control) are installed as
# root with apt-get build-dep, only when dpkg-checkbuilddeps finds some missing.
SYSTEM_PATH := /usr/sbin:/usr/bin:/sbin:/bin
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get \
           -o DPkg::Lock::Timeout=120
deb: export PATH := $(SYSTEM_PATH)
deb:
	dpkg-checkbuilddeps 2>/dev/null || $(APT_GET) build-dep -y ./ \
	    || { $(APT_GET) update && $(APT_GET) build-dep -y ./; }
	rm -rf dist/deb
	mkdir -p dist
	/usr/bin/python3 lab/srctree.py dist/deb/qgactl
	cd dist/deb/qgactl && dpkg-buildpackage --build=binary --no-sign
	cp dist/deb/qgactl_*_all.deb dist/

# dist/qgactl-guest-<version>.tar.gz: the Ansible collection qgactl.guest (ansible/), with
# qgactl's version; install it with `ansible-galaxy collection install dist/qgactl-guest-*.tar.gz`.
VERSION = $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' qgactl/__init__.py)
collection: venv
	rm -rf dist/collection && mkdir -p dist/collection
	cp -r ansible/. dist/collection/
	sed -i 's/^version: .*/version: $(VERSION)/' dist/collection/galaxy.yml
	$(VENV)/bin/ansible-galaxy collection build --force --output-path dist dist/collection

clean:
	rm -rf $(VENV) lab/build .pytest_cache .mypy_cache .ruff_cache *.egg-info dist
