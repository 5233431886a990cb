# The two commands of the README: `make demo` runs the bot on the local sandbox,
# `make test` runs the whole test suite. Both install what they need first.
# `make test-fast` is the daily tier: pure, Redis and Slack-emulator tests, no control plane
# (nothing is built from source, no container image).
.PHONY: test test-fast demo bootstrap bench

test:
	bash scripts/test.sh $(PYTEST_ARGS)

test-fast:
	SKIP_CLUSTER_BUILD=1 bash scripts/test.sh -m "not cluster and not image" $(PYTEST_ARGS)

demo: bootstrap
	.venv/bin/k8s-incident-bot demo

bootstrap:
	bash scripts/bootstrap.sh

bench: bootstrap
	.venv/bin/python -m bench
