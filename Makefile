.PHONY: run test bench lint

run:  ## run the service on embedded defaults (http://127.0.0.1:8000)
	bash scripts/run.sh

test:  ## run every check and every test
	bash scripts/test.sh

bench:  ## run every benchmark and rewrite the docs/benchmarks-*.md pages
	bash scripts/bench.sh

lint:
	bash scripts/setup.sh --dev
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
