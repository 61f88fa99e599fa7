"""One-pass evaluation: benchmark readers, runner, metrics, plots, composite test set.

Not needed on the robot. ``ros-tracker eval`` and ``ros-tracker eval-build-composite`` are the
command-line entry points (ros_tracker.cli.eval, ros_tracker.cli.eval_build_composite).
"""
