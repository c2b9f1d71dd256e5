"""Input checks: clear errors naming the argument, expected and received values."""

import numpy as np
import pytest

from tfmeta.data.validation import as_labelled_arrays, check_episode_request, check_support_set


def test_mismatched_lengths_name_both_arguments():
    with pytest.raises(ValueError, match=r"len\(x\)=3 and len\(y\)=2"):
        as_labelled_arrays(np.zeros((3, 2)), [0, 1])


def test_non_finite_values_are_counted():
    x = np.zeros((3, 2))
    x[0, 0] = np.nan
    x[1, 1] = np.inf
    with pytest.raises(ValueError, match="found 2 NaN or infinite"):
        as_labelled_arrays(x, [0, 1, 1])


def test_string_labels_are_rejected_with_a_hint():
    with pytest.raises(TypeError, match="LabelEncoder"):
        as_labelled_arrays(np.zeros((2, 2)), ["a", "b"])


def test_episode_request_reports_classes_and_smallest_class():
    y = np.array([0] * 5 + [1] * 3 + [2] * 6)
    with pytest.raises(ValueError, match=r"`ways`=4 .* 3 classes"):
        check_episode_request(y, ways=4, shots=1, queries=1)
    with pytest.raises(ValueError, match=r"5-shot.*smallest class size found: 3"):
        check_episode_request(y, ways=2, shots=5, queries=1)
    assert check_episode_request(y, ways=2, shots=4, queries=1).tolist() == [0, 2]


def test_support_labels_must_cover_0_to_n_minus_1():
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        check_support_set(np.zeros((3, 2)), [0, 2, 2])
    with pytest.raises(ValueError, match="shape of `support_x`"):
        check_support_set(np.zeros((2, 2)), [0, 1], np.zeros((1, 3)))
    _, sy, _, ways = check_support_set(np.zeros((4, 2)), [1, 0, 1, 0])
    assert ways == 2 and sy.dtype == np.int32
