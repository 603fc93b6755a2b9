# ignn-lab: `make demo` and `make test` are all a new user needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
STAMP  := $(VENV)/.installed
LAB_PORT ?= 8888

.PHONY: demo test test-slow bench install lab clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev,faiss,notebooks]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ignn-lab demo --out runs/demo

# JupyterLab on notebooks/ (127.0.0.1 only), with this environment's kernel registered as "Python (ignn-lab)".
# Uses LAB_PORT when it is free, else any free port; prints the URL (with its token) before starting.
lab: $(STAMP)
	$(PY) -m ipykernel install --user --name ignn-lab --display-name "Python (ignn-lab)"
	@PORT=$$($(PY) -c 'import socket, sys; p = int(sys.argv[1]); busy = socket.socket().connect_ex(("127.0.0.1", p)) == 0; s = socket.socket(); s.bind(("127.0.0.1", 0 if busy else p)); print(s.getsockname()[1])' $(LAB_PORT)); \
	TOKEN=$$($(PY) -c 'import secrets; print(secrets.token_hex(16))'); \
	ROOT=$$( [ "$$(id -u)" = 0 ] && echo --allow-root ); \
	echo "JupyterLab: http://127.0.0.1:$$PORT/lab/tree/01_explore.ipynb?token=$$TOKEN  (Ctrl-C stops it)"; \
	exec $(PY) -m jupyterlab --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$$PORT \
	  --ServerApp.port_retries=0 --IdentityProvider.token=$$TOKEN --ServerApp.root_dir=notebooks $$ROOT

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(VENV)/bin/ignn-lab bench knn --json runs/bench/knn.json
	$(VENV)/bin/ignn-lab bench models --json runs/bench/models.json

clean:
	rm -rf $(VENV) runs .pytest_cache
