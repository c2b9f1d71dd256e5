"""Column type inference on awkward columns, the overrides, and the model's raw inputs."""

import numpy as np
import pandas as pd
import pytest

from tfmeta.automodel.column_types import describe, infer_column_types, input_name
from tfmeta.automodel.table_inputs import to_model_inputs


@pytest.fixture(scope="module")
def awkward():
    """Sixty rows of the columns real tables have: blanks, NA tokens, dates, IDs, free text."""
    rng = np.random.default_rng(0)
    n = 60
    charges = [f"{v:.2f}" for v in rng.uniform(20, 100, n)]
    charges[3], charges[10] = " ", ""  # a numeric column written as text, with blanks
    return pd.DataFrame({
        "charges": charges,
        "age": rng.integers(18, 90, n).astype(float),
        "children": rng.integers(0, 4, n),  # few integer levels: categorical
        "smoker": rng.choice([True, False], n),
        "sex": rng.choice(["male", "female", None], n),
        "plan": rng.choice(["basic", "premium", "NA", "gold"], n),
        "signup": [f"2021-0{1 + i % 9}-1{i % 10} 0{i % 10}:15:00" for i in range(n)],
        "visit": [f"{1 + i % 12}/{1 + i % 28}/2020" for i in range(n)],
        "customer_id": [f"C-{1000 + i}" for i in range(n)],
        "review": [f"the service was {w} and the food arrived {i} minutes late" for i, w in
                   zip(range(n), rng.choice(["good", "slow", "awful", "fine"], n))],
    })


def test_every_kind_is_inferred_from_the_values(awkward):
    specs = infer_column_types(awkward)
    kinds = {name: spec.kind for name, spec in specs.items()}
    assert kinds == {
        "charges": "numeric", "age": "numeric", "children": "categorical", "smoker": "numeric",
        "sex": "categorical", "plan": "categorical", "signup": "datetime", "visit": "datetime",
        "customer_id": "identifier", "review": "text",
    }
    assert specs["signup"].date_order == "ymd" and specs["visit"].date_order == "mdy"
    assert specs["charges"].input_dtype == "float32" and specs["sex"].input_dtype == "string"
    table = describe(specs)
    assert "charges" in table and "numbers" in table and "identifier" in table


def test_overrides_are_applied_and_marked(awkward):
    specs = infer_column_types(awkward, column_types={"age": "categorical", "customer_id": "ignore",
                                                     "children": "numeric"})
    assert specs["age"].kind == "categorical" and specs["age"].user_set
    assert specs["age"].input_dtype == "float32"  # integers stay numbers at the input
    assert specs["children"].kind == "numeric"
    assert specs["customer_id"].kind == "identifier"
    assert "(set)" in describe(specs)


@pytest.mark.parametrize(
    "column_types, match",
    [({"nope": "numeric"}, "names columns not in the table"),
     ({"age": "fancy"}, r"column_types\['age'\]"),
     ({"sex": "datetime"}, "not dates")],
)
def test_bad_overrides_are_named(awkward, column_types, match):
    with pytest.raises(ValueError, match=match):
        infer_column_types(awkward, column_types=column_types)


def test_a_column_that_is_entirely_missing_is_named():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "empty": [None, " ", "NA"]})
    with pytest.raises(ValueError, match="'empty' is entirely missing"):
        infer_column_types(frame)


def test_model_inputs_carry_missing_values_as_nan_and_empty_strings(awkward):
    specs = infer_column_types(awkward)
    arrays = to_model_inputs(awkward, specs)
    assert "customer_id" not in arrays  # identifiers are not model inputs
    assert arrays["charges"].dtype == np.float32
    assert np.isnan(arrays["charges"][[3, 10]]).all() and not np.isnan(arrays["charges"][0])
    assert arrays["smoker"].dtype == np.float32 and set(np.unique(arrays["smoker"])) <= {0.0, 1.0}
    assert arrays["sex"].dtype == object and "" in set(arrays["sex"]) and None not in set(arrays["sex"])
    assert "" in set(arrays["plan"])  # "NA" is missing
    assert arrays["children"].dtype == np.float32


def test_predict_time_frames_are_checked(awkward):
    specs = infer_column_types(awkward)
    with pytest.raises(ValueError, match=r"missing the training column\(s\) \['age'\]"):
        to_model_inputs(awkward.drop(columns=["age"]), specs)
    changed = awkward.assign(charges=["n/a" if i % 3 else "abc" for i in range(len(awkward))])
    with pytest.raises(ValueError, match="'charges' was numeric in `fit`.*type changed"):
        to_model_inputs(changed, specs)
    with pytest.warns(UserWarning, match=r"not seen in `fit`, ignored: \['extra'\]"):
        arrays = to_model_inputs(awkward.assign(extra=1), specs)
    assert "extra" not in arrays
    # Columns given in another order or without identifiers still work.
    arrays = to_model_inputs(awkward[list(reversed(awkward.columns))].drop(columns=["customer_id"]), specs)
    assert set(arrays) == {s.input_name for s in specs.values() if s.kind != "identifier"}


def test_input_names_are_valid_and_unique():
    taken = set()
    assert input_name("total bill ($)", taken) == "total_bill____"
    assert input_name("total bill ($)", taken) == "total_bill_____2"
    assert input_name("2nd", taken) == "c_2nd"
