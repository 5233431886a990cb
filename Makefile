# The two commands of the README: `make demo` runs the bot on the local sandbox,
# `make test` runs the whole test suite. Both install what they need first.
.PHONY: test demo bootstrap bench

test:
	bash scripts/test.sh $(PYTEST_ARGS)

demo: bootstrap
	.venv/bin/k8s-incident-bot demo

bootstrap:
	bash scripts/bootstrap.sh

bench: bootstrap
	.venv/bin/python -m bench
