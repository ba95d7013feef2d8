# compat.mk - client compatibility matrix (tests/compat/README.md).
# Included by the top Makefile:   include tests/compat/compat.mk
#
#   make compat                  every client and suite, hopper vs RabbitMQ; writes tests/compat/MATRIX.md
#   make compat COMPAT_ARGS='--clients pika,go --no-suites'
#   make compat-clean            drop installed clients, logs and RabbitMQ data (.cache/compat)
#
# Needs what `make setup` installs plus the packages the runner installs when
# missing (rabbitmq-server, php-cli, php-amqplib, ruby-bunny; as root or via
# sudo), network access to PyPI, npm, Maven Central and the Go module proxy.

COMPAT_PYTHON ?= /usr/bin/python3
COMPAT_ARGS ?=

.PHONY: compat compat-clean

compat: $(HOPPER)
	HOPPER_BIN=$(abspath $(HOPPER)) $(COMPAT_PYTHON) tests/compat/run.py $(COMPAT_ARGS)

compat-clean:
	rm -rf .cache/compat
