"""Template dependence: does a network's score map change with its template?

The shipped default on scikit-image's photographs through the real runtime (ONNX Runtime),
and the definition checked where its answer is known: a frame under its own template again
gives the same map (similarity 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from ros_tracker.evaluation.template_dependence import (
    centre_cells,
    measure_template_dependence,
)
from ros_tracker.runtime.factory import build_tracker

# an object in each photo (x, y, w, h): a face, a cup, a cat's head, the rocket, a man
BOXES = {
    "astronaut": (170.0, 20.0, 120.0, 150.0),
    "coffee": (190.0, 20.0, 250.0, 200.0),
    "chelsea": (130.0, 30.0, 170.0, 150.0),
    "rocket": (300.0, 60.0, 60.0, 300.0),
    "camera": (180.0, 50.0, 160.0, 300.0),
}


@pytest.fixture(scope="module")
def frames():
    pytest.importorskip("skimage.data")
    from ros_tracker.evaluation.shape_fidelity import photos

    return [(name, image, BOXES[name]) for name, image in photos()]


@pytest.fixture(scope="module")
def default_tracker(tmp_path_factory):
    return build_tracker(
        "hcat_mobilenetv2",
        backend="onnxruntime",
        threads=2,
        engine_cache_dir=str(tmp_path_factory.mktemp("engines")),
    )


def test_the_default_scores_its_own_target_above_foreign_templates(default_tracker, frames):
    report = measure_template_dependence(default_tracker, frames, foreign=2)
    assert [f.name for f in report.frames] == [name for name, _, _ in frames]
    for figure in report.frames:
        assert -1.0 <= figure.similarity <= 1.0
        assert 0.0 <= figure.foreign_centre <= 1.0 and 0.0 <= figure.own_centre <= 1.0
    assert report.own_centre > report.foreign_centre, report.lines()
    assert report.similarity == pytest.approx(np.mean([f.similarity for f in report.frames]))
    assert not default_tracker.initialized  # measuring leaves no target behind


def test_the_same_template_again_gives_the_same_map(default_tracker, frames):
    name, image, box = frames[0]
    report = measure_template_dependence(default_tracker, [(name, image, box)] * 3)
    assert report.similarity == pytest.approx(1.0)
    assert report.own_centre == pytest.approx(report.foreign_centre)


def test_search_outputs_leave_the_tracked_box_alone(default_tracker, frames):
    _, image, box = frames[1]
    default_tracker.initialize(image, box)
    outputs = default_tracker.search_outputs(image, (10.0, 10.0, 40.0, 40.0))
    assert default_tracker.box == box and default_tracker.frame_index == 0
    assert set(outputs) == set(default_tracker.card.output_names)
    default_tracker.reset()
    with pytest.raises(RuntimeError, match="before initialize"):
        default_tracker.search_outputs(image, box)


def test_it_needs_a_score_map_and_two_frames(tmp_path, frames):
    with pytest.raises(ValueError, match="two or more frames"):
        measure_template_dependence(None, frames[:1])
    tracker = build_tracker(
        "hit_tiny", backend="onnxruntime", threads=1, engine_cache_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="no per-cell score map"):
        measure_template_dependence(tracker, frames[:2])


def test_centre_cells_of_even_and_odd_grids():
    even = np.arange(16.0).reshape(4, 4)
    assert centre_cells(even).tolist() == [[5.0, 6.0], [9.0, 10.0]]
    odd = np.arange(9.0).reshape(3, 3)
    assert centre_cells(odd).tolist() == [[4.0]]
