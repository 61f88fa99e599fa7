"""Readers of the benchmark layouts, on tiny trees written in those layouts."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eval_trees import write_frames

from ros_tracker.evaluation.readers import (
    DatasetError,
    _otb_frames,
    parse_boxes,
    read_dataset,
)


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_parse_boxes_accepts_any_separator_nan_and_blank_lines():
    text = "1,2,3,4\n5\t6\t7\t8\n\n9 10  11 12\nNaN,NaN,NaN,NaN\n13;14;0;0\n1.5,2.5,3.5,4.5,\n"
    boxes = parse_boxes(text)
    assert boxes.shape == (6, 4)
    np.testing.assert_array_equal(boxes[1], [5, 6, 7, 8])
    np.testing.assert_array_equal(boxes[2], [9, 10, 11, 12])
    assert np.isnan(boxes[3]).all()
    np.testing.assert_array_equal(boxes[4], [13, 14, 0, 0])
    np.testing.assert_array_equal(boxes[5], [1.5, 2.5, 3.5, 4.5])


def test_parse_boxes_rejects_rows_without_four_numbers():
    with pytest.raises(DatasetError, match="line 2: expected 4 values"):
        parse_boxes("1,2,3,4\n1,2,3\n")
    with pytest.raises(DatasetError, match="not numbers"):
        parse_boxes("1,2,x,4\n")


def test_otb_layout_with_awkward_ground_truth(tmp_path):
    root = str(tmp_path)
    write_frames(os.path.join(root, "Basketball", "img"), 3)
    _write(
        os.path.join(root, "Basketball", "groundtruth_rect.txt"),
        "1\t2\t3\t4\n2\t3\t0\t0\nNaN\tNaN\tNaN\tNaN\n",
    )
    # Two targets in one folder (Jogging): two sequences named <Seq>.<k>.
    write_frames(os.path.join(root, "Jogging", "img"), 2)
    _write(os.path.join(root, "Jogging", "groundtruth_rect.1.txt"), "1,1,5,5\n2,2,5,5\n")
    _write(os.path.join(root, "Jogging", "groundtruth_rect.2.txt"), "9 9 4 4\n8 8 4 4\n")
    # An empty ground-truth file (Human4's first) is ignored; the other keeps the plain name.
    write_frames(os.path.join(root, "Human4", "img"), 2)
    _write(os.path.join(root, "Human4", "groundtruth_rect.1.txt"), "\n")
    _write(os.path.join(root, "Human4", "groundtruth_rect.2.txt"), "3,3,6,6\n4,4,6,6\n")
    # More images than boxes: the first N frames (the OTB toolkit's range).
    write_frames(os.path.join(root, "Football1", "img"), 5)
    _write(os.path.join(root, "Football1", "groundtruth_rect.txt"), "1,1,2,2\n1,1,2,2\n")
    os.makedirs(os.path.join(root, "not_a_sequence"))

    dataset = read_dataset(root, "otb")
    names = [s.name for s in dataset.sequences]
    assert names == ["Basketball", "Football1", "Human4", "Jogging.1", "Jogging.2"]
    basketball = dataset.sequences[0]
    assert basketball.ground_truth.shape == (3, 4)
    np.testing.assert_array_equal(basketball.ground_truth[1], [2, 3, 0, 0])
    assert np.isnan(basketball.ground_truth[2]).all()
    assert basketball.frames[0].endswith(os.path.join("Basketball", "img", "0001.jpg"))
    football = dataset.sequences[1]
    assert [os.path.basename(f) for f in football.frames] == ["0001.jpg", "0002.jpg"]
    np.testing.assert_array_equal(dataset.sequences[4].ground_truth[0], [9, 9, 4, 4])
    assert dataset.name == os.path.basename(root) and not dataset.composite
    assert dataset.has_ground_truth


def test_otb_frame_range_of_david_starts_at_frame_300():
    images = [f"{i:04d}.jpg" for i in range(1, 801)]
    frames = _otb_frames("David", images, 471)
    assert frames[0] == "0300.jpg" and frames[-1] == "0770.jpg" and len(frames) == 471


def test_otb_mismatched_lengths_and_empty_folder_are_reported(tmp_path):
    write_frames(str(tmp_path / "Seq" / "img"), 2)
    _write(str(tmp_path / "Seq" / "groundtruth_rect.txt"), "1,1,2,2\n1,1,2,2\n1,1,2,2\n")
    with pytest.raises(DatasetError, match="2 images but 3 ground-truth boxes"):
        read_dataset(str(tmp_path), "otb")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DatasetError, match="no OTB-layout sequences"):
        read_dataset(str(tmp_path / "empty"), "otb")


def test_uav123_in_otb_layout_with_attribute_flags(tmp_path):
    root = str(tmp_path)
    write_frames(os.path.join(root, "bike1", "img"), 3)
    _write(
        os.path.join(root, "bike1", "groundtruth_rect.txt"), "1,1,5,5\nNaN,NaN,NaN,NaN\n2,2,5,5\n"
    )
    _write(os.path.join(root, "att", "bike1.txt"), "1,0,0,1,0,0,1,0,0,0,0,1\n")
    sequence = read_dataset(root, "uav123").sequences[0]
    assert sequence.attributes == [
        "scale_variation",
        "fast_motion",
        "out_of_view",
        "similar_object",
    ]
    assert np.isnan(sequence.ground_truth[1]).all()


def test_uav123_release_layout_is_refused_with_a_reason(tmp_path):
    os.makedirs(tmp_path / "data_seq" / "UAV123")
    os.makedirs(tmp_path / "anno" / "UAV123")
    with pytest.raises(DatasetError, match="frame ranges"):
        read_dataset(str(tmp_path), "uav123")


def _lasot_sequence(root, category, index, frames, occlusion, out_of_view):
    seq_dir = os.path.join(root, category, f"{category}-{index}")
    write_frames(
        os.path.join(seq_dir, "img"), frames, [f"{i:08d}.jpg" for i in range(1, frames + 1)]
    )
    _write(os.path.join(seq_dir, "groundtruth.txt"), "1,2,3,4\n" * (frames - 1) + "0,0,0,0\n")
    _write(os.path.join(seq_dir, "full_occlusion.txt"), ",".join(map(str, occlusion)))
    _write(os.path.join(seq_dir, "out_of_view.txt"), ",".join(map(str, out_of_view)))
    _write(os.path.join(seq_dir, "nlp.txt"), "a thing")


def test_lasot_class_folders_flags_and_test_listing(tmp_path):
    root = str(tmp_path)
    _lasot_sequence(root, "airplane", 1, 4, [0, 0, 1, 0], [0, 0, 0, 1])
    _lasot_sequence(root, "airplane", 13, 3, [0, 0, 0], [0, 0, 0])
    _lasot_sequence(root, "bird", 2, 3, [0, 1, 0], [0, 0, 0])
    _write(os.path.join(root, "testing_set.txt"), "airplane-1\nbird-2\n")

    test = read_dataset(root, "lasot")
    assert [s.name for s in test.sequences] == ["airplane-1", "bird-2"]
    np.testing.assert_array_equal(test.sequences[0].absent, [False, False, True, True])
    np.testing.assert_array_equal(test.sequences[0].ground_truth[-1], [0, 0, 0, 0])
    assert [s.name for s in read_dataset(root, "lasot", "train").sequences] == ["airplane-13"]
    assert len(read_dataset(root, "lasot", "all").sequences) == 3


def test_lasot_flat_layout(tmp_path):
    root = str(tmp_path)
    _lasot_sequence(root, "cat", 1, 2, [0, 0], [1, 0])
    os.rename(os.path.join(root, "cat", "cat-1"), os.path.join(root, "cat-1"))
    sequence = read_dataset(root, "lasot").sequences[0]
    assert sequence.name == "cat-1"
    np.testing.assert_array_equal(sequence.absent, [True, False])


def _got10k_split(root, split, names, frames, full):
    split_dir = os.path.join(root, split)
    _write(os.path.join(split_dir, "list.txt"), "\n".join(names) + "\n")
    for name in names:
        seq_dir = os.path.join(split_dir, name)
        write_frames(seq_dir, frames, [f"{i:08d}.jpg" for i in range(1, frames + 1)])
        rows = ["10,20,30,40"] * (frames if full else 1)
        _write(os.path.join(seq_dir, "groundtruth.txt"), "\n".join(rows) + "\n")
        if full:
            _write(os.path.join(seq_dir, "absence.label"), "0\n1\n" + "0\n" * (frames - 2))
            _write(os.path.join(seq_dir, "cover.label"), "8\n0\n" + "8\n" * (frames - 2))
            _write(
                os.path.join(seq_dir, "meta_info.ini"),
                "[METAINFO]\nurl: x\nresolution: (1280, 720)\nmajor_class: animal\n",
            )


def test_got10k_val_and_test_splits(tmp_path):
    root = str(tmp_path)
    _got10k_split(root, "val", ["GOT-10k_Val_000001", "GOT-10k_Val_000002"], 4, True)
    _got10k_split(root, "test", ["GOT-10k_Test_000001"], 3, False)

    val = read_dataset(root, "got10k")
    assert val.split == "val" and len(val.sequences) == 2
    sequence = val.sequences[0]
    np.testing.assert_array_equal(sequence.absent, [False, True, False, False])
    assert sequence.image_size == (1280, 720)
    assert val.has_ground_truth

    test = read_dataset(root, "got10k", "test")
    assert test.split == "test"
    assert test.sequences[0].ground_truth.shape == (1, 4)
    assert len(test.sequences[0]) == 3 and not test.has_ground_truth
    assert test.sequences[0].initial_box == (10.0, 20.0, 30.0, 40.0)
    # The split folder itself may be given.
    direct = read_dataset(os.path.join(root, "test"), "got10k")
    assert direct.split == "test" and [s.name for s in direct.sequences] == ["GOT-10k_Test_000001"]


def test_trackingnet_chunks_natural_frame_order_and_test_first_box(tmp_path):
    root = str(tmp_path)
    names = [f"{i}.jpg" for i in range(12)]
    write_frames(os.path.join(root, "TRAIN_0", "frames", "abc_1"), 12, names)
    _write(os.path.join(root, "TRAIN_0", "anno", "abc_1.txt"), "1,2,3,4\n" * 12)
    write_frames(os.path.join(root, "TRAIN_1", "frames", "def_2"), 2, names)
    _write(os.path.join(root, "TRAIN_1", "anno", "def_2.txt"), "1,2,3,4\n1,2,3,4\n")
    write_frames(os.path.join(root, "TEST", "frames", "xyz_0"), 5, names)
    _write(os.path.join(root, "TEST", "anno", "xyz_0.txt"), "5,6,7,8\n")

    test = read_dataset(root, "trackingnet")
    assert [s.name for s in test.sequences] == ["xyz_0"] and not test.has_ground_truth
    train = read_dataset(root, "trackingnet", "train")
    assert [s.name for s in train.sequences] == ["abc_1", "def_2"]
    frames = [os.path.basename(f) for f in train.sequences[0].frames]
    assert frames[:3] == ["0.jpg", "1.jpg", "2.jpg"] and frames[-2:] == ["10.jpg", "11.jpg"]
    chunk = read_dataset(root, "trackingnet", "TRAIN_1")
    assert [s.name for s in chunk.sequences] == ["def_2"]
    with pytest.raises(DatasetError, match="no TrackingNet chunk"):
        read_dataset(root, "trackingnet", "TRAIN_7")


def test_attributes_file_split_file_and_composite_label(tmp_path):
    root = str(tmp_path)
    for name in ("a_scale_01", "b_blur_02"):
        write_frames(os.path.join(root, name, "img"), 2)
        _write(os.path.join(root, name, "groundtruth_rect.txt"), "1,1,4,4\n1,1,4,4\n")
    _write(
        os.path.join(root, "attributes.json"), '{"a_scale_01": ["scale"], "b_blur_02": ["blur"]}'
    )
    _write(os.path.join(root, "split.json"), '{"train": ["a_scale_01"], "test": ["b_blur_02"]}')
    _write(os.path.join(root, "composite.json"), '{"kind": "composite"}')

    dataset = read_dataset(root, "otb")
    assert dataset.name == "composite" and dataset.composite
    assert dataset.attribute_names() == ["scale", "blur"]
    test = read_dataset(root, "otb", "test")
    assert [s.name for s in test.sequences] == ["b_blur_02"]
    with pytest.raises(DatasetError, match="split 'val'"):
        read_dataset(root, "otb", "val")


def test_unknown_format_and_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset format"):
        read_dataset(str(tmp_path), "vot")
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(str(tmp_path / "nope"), "otb")
