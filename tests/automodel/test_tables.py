"""AutoModel on tables: raw mixed-type columns in, raw rows served, errors before training."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import tfmeta
from tfmeta.xla_check import check_export


def mixed_table(rows: int, seed: int) -> pd.DataFrame:
    """A table whose label depends on a number, a category and a date, with every awkward case:
    NaN, blank strings among numbers, None categories, a high-cardinality column, an ID."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(50, 20, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    day = rng.integers(1, 28, rows)
    hour = rng.integers(0, 24, rows)
    score = (amount - 50) / 20 + np.where(plan == "pro", 1.5, np.where(plan == "basic", -1.5, 0)) \
        + np.where(hour >= 12, 1.0, -1.0)
    label = np.where(score + rng.normal(0, 0.3, rows) > 0, "yes", "no")
    charges = [f"{v:.2f}" for v in amount]
    for i in rng.choice(rows, rows // 20, replace=False):
        charges[i] = " "  # a numeric column written as text, with blanks
    plan = plan.astype(object)
    plan[rng.choice(rows, rows // 25, replace=False)] = None
    return pd.DataFrame({
        "charges": charges,
        "plan": plan,
        "signup": [f"2024-03-{d:02d} {h:02d}:30:00" for d, h in zip(day, hour)],
        "city": [f"town{int(v)}" for v in rng.integers(0, 300, rows)],  # hundreds of levels, no signal
        "visits": np.where(rng.random(rows) < 0.1, np.nan, rng.poisson(3, rows).astype(float)),
        "customer": [f"C{100000 + i}" for i in range(rows)],  # an identifier
        "label": label,
    })


@pytest.fixture(scope="module")
def table_model(tmp_path_factory):
    train = mixed_table(600, seed=0)
    am = tfmeta.AutoModel(task="classification", max_trials=2, epochs=8, seed=0, verbose=0,
                          directory=str(tmp_path_factory.mktemp("runs")), project_name="table")
    am.fit(train, y="label")
    return am, train


def test_refit_on_a_table_with_other_columns_is_refused(table_model):
    am, train = table_model
    with pytest.raises(ValueError, match="searched on other data.*columns and their types.*overwrite=True"):
        tfmeta.AutoModel(**am.get_params()).fit(train.drop(columns=["city"]), y="label")


def test_a_mixed_table_is_typed_and_learned(table_model):
    am, _ = table_model
    specs = am.raw_task_.specs
    assert {n: s.kind for n, s in specs.items()} == {
        "charges": "numeric", "plan": "categorical", "signup": "datetime", "city": "categorical",
        "visits": "categorical", "customer": "identifier"}  # visits: few integer levels
    assert "identifier" in am.summary() and "numbers written as text" in am.summary()
    test = mixed_table(400, seed=1)
    majority = max(np.mean(test.label == "yes"), np.mean(test.label == "no"))
    assert am.score(test, y="label") > majority + 0.15
    rows = am.leaderboard()
    assert rows[0]["status"] == "completed" and set(rows[0]["choices"]) >= {
        "numeric_encoding", "categorical_encoding", "learning_rate", "batch_size", "dropout", "weight_decay"}
    assert rows[0]["seconds"] > 0


def test_unseen_categories_and_missing_values_predict(table_model):
    am, train = table_model
    rows = train.drop(columns=["label"]).head(4).copy()
    rows.loc[rows.index[0], "plan"] = "enterprise"  # never seen in training
    rows.loc[rows.index[1], "charges"] = ""
    rows.loc[rows.index[2], "signup"] = None
    rows.loc[rows.index[3], "city"] = "atlantis"
    probabilities = am.predict_proba(rows)
    assert probabilities.shape == (4, 2) and np.all(np.isfinite(probabilities))
    assert set(am.predict(rows)) <= {"yes", "no"}


def test_the_export_takes_one_raw_input_per_column(table_model, tmp_path):
    am, train = table_model
    path = am.export(str(tmp_path / "table"))
    [check] = check_export(path)  # raw columns: the string preprocessing runs on the host CPU
    # (The numeric part behind the date parsing is not always cut out: then `numeric` is None.)
    assert (check.signature, check.status, check.ok) == ("serving_default", "host preprocessing", True), check
    meta = json.loads((tmp_path / "table" / "1" / "tfmeta.json").read_text())
    columns = {c["name"]: c for c in meta["input_spec"]["columns"]}
    # three plans and "missing", which is a category of its own when training saw it
    assert columns["plan"]["kind"] == "categorical" and columns["plan"]["vocabulary_size"] == 4
    assert columns["charges"]["dtype"] == "float" and columns["signup"]["dtype"] == "string"
    assert meta["input_spec"]["ignored_columns"] == ["customer"]
    signature = tf.saved_model.load(path).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert {k: v.dtype for k, v in inputs.items()} == {
        "charges": tf.float32, "plan": tf.string, "signup": tf.string, "city": tf.string, "visits": tf.float32}  # integer categories take numbers
    rows = train.drop(columns=["label"]).head(5)
    raw = {  # what a client sends: numbers (NaN for missing) and strings ("" for missing)
        "charges": pd.to_numeric(rows.charges.str.strip(), errors="coerce").to_numpy("float32"),
        "plan": rows.plan.fillna("").to_numpy(str), "signup": rows.signup.to_numpy(str),
        "city": rows.city.to_numpy(str), "visits": rows.visits.to_numpy("float32"),
    }
    served = signature(**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_allclose(served["probabilities"].numpy(), am.predict_proba(rows), atol=1e-5)
    assert [c.decode() for c in served["classes"].numpy()] == list(am.predict(rows))


def test_a_csv_is_streamed_with_the_target_named(tmp_path):
    table = mixed_table(500, seed=2)
    table.to_csv(tmp_path / "train.csv", index=False)
    am = tfmeta.AutoModel(task="classification", max_trials=1, epochs=4, seed=0, verbose=0,
                          directory=str(tmp_path / "runs"), project_name="csv")
    am.fit(str(tmp_path / "train.csv"), y="label")
    assert not am.raw_task_.source.in_memory
    with pytest.warns(UserWarning, match=r"ignored: \['label'\]"):  # the file still holds the target
        from_file = am.predict_proba(str(tmp_path / "train.csv"))
    from_frame = am.predict_proba(table.drop(columns=["label"]))
    np.testing.assert_allclose(from_file, from_frame, atol=1e-6)
    assert am.evaluate(str(tmp_path / "train.csv"), y="label")["accuracy"] > 0.7


def test_regression_on_a_dict_of_columns(tmp_path):
    rng = np.random.default_rng(3)
    x = {"size": rng.uniform(0, 10, 400), "kind": rng.choice(["a", "b"], 400)}
    y = 3 * x["size"] + np.where(x["kind"] == "a", 5.0, -5.0) + rng.normal(0, 0.5, 400)
    am = tfmeta.AutoModel(task="regression", max_trials=1, epochs=30, seed=0, verbose=0,
                          directory=str(tmp_path), project_name="reg")
    am.fit(x, y)
    assert am.score(x, y) > 0.9  # R^2


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        ("missing.csv", "label", ValueError, "does not exist"),
        ("table", "price", ValueError, "target column 'price'"),
        ("empty_column", "label", ValueError, "'nothing' is entirely missing"),
        ("table", None, ValueError, "`y` is required"),
    ],
)
def test_bad_tables_are_refused_before_training(tmp_path, x, y, error, match):
    table = mixed_table(60, seed=4)
    if x == "empty_column":
        x = table.assign(nothing=[None] * len(table))
    elif x == "table":
        x = table
    else:
        x = str(tmp_path / x)
    am = tfmeta.AutoModel(task="classification", max_trials=1, epochs=1, verbose=0, directory=str(tmp_path))
    with pytest.raises(error, match=match):
        am.fit(x, y=y)


def test_predict_time_tables_are_checked(table_model):
    am, train = table_model
    with pytest.raises(ValueError, match=r"missing the training column\(s\) \['plan'\]"):
        am.predict(train.drop(columns=["plan", "label"]))
    with pytest.raises(ValueError, match="'charges' was numeric in `fit`.*type changed"):
        am.predict(train.drop(columns=["label"]).assign(charges="high"))
    with pytest.warns(UserWarning, match="not seen in `fit`, ignored"):
        am.predict(train.head(3))  # the label column is extra here


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, monkeypatch):
    from tfmeta.automodel import tables

    build = tables.TableTask.build
    calls = []

    def flaky(self, arch):
        calls.append(arch)
        if len(calls) == 2:  # the second trial's model cannot be built
            raise RuntimeError("out of memory (simulated)")
        return build(self, arch)

    monkeypatch.setattr(tables.TableTask, "build", flaky)
    am = tfmeta.AutoModel(task="classification", max_trials=3, epochs=2, seed=0, verbose=0, refit=False,
                          directory=str(tmp_path), project_name="flaky")
    am.fit(mixed_table(200, seed=5), y="label")
    board = am.leaderboard()
    failed = [row for row in board if row["status"] == "failed"]
    assert len(board) == 3 and len(failed) == 1
    assert "out of memory (simulated)" in failed[0]["error"]
    assert board[0]["status"] == "completed"


def test_tfmeta_serve_answers_tf_serving_rows_of_raw_columns(table_model, tmp_path):
    import threading
    import urllib.request

    from tfmeta.serving import make_server

    am, train = table_model
    am.export(str(tmp_path / "served"))
    rows = train.drop(columns=["label", "customer"]).head(3)
    instances = []  # TF Serving's row format: one object per row, raw values, NaN / "" when missing
    for _, row in rows.iterrows():
        charges = pd.to_numeric(str(row.charges).strip(), errors="coerce")
        instances.append({"charges": float(charges), "plan": row.plan or "", "signup": row.signup,
                          "city": row.city, "visits": float(row.visits)})
    server = make_server(str(tmp_path / "served"), "table", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/table:predict"
        request = urllib.request.Request(url, data=json.dumps({"instances": instances}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        server.shutdown()
        server.server_close()
    np.testing.assert_allclose([p["probabilities"] for p in predictions], am.predict_proba(rows), atol=1e-5)
    assert [p["classes"] for p in predictions] == list(am.predict(rows))


def test_a_csv_is_never_read_whole(tmp_path, monkeypatch):
    """Streaming: every read of the file is a bounded chunk (or the typing sample), so a file
    larger than memory fits; `benchmarks/automodel_streaming.py` measures a million rows."""
    from tfmeta.automodel import tables
    from tfmeta.data import tables as table_sources

    mixed_table(3000, seed=6).to_csv(tmp_path / "big.csv", index=False)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 400)
    monkeypatch.setattr(tables, "INFERENCE_ROWS", 300)
    reads = []
    read_csv = table_sources.pd.read_csv

    def counted(path, *args, **kwargs):
        reads.append((kwargs.get("chunksize"), kwargs.get("nrows")))
        return read_csv(path, *args, **kwargs)

    monkeypatch.setattr(table_sources.pd, "read_csv", counted)
    am = tfmeta.AutoModel(task="classification", max_trials=1, epochs=2, seed=0, verbose=0,
                          directory=str(tmp_path / "runs"), project_name="stream")
    am.fit(str(tmp_path / "big.csv"), y="label")
    # Every read is bounded: the header, the typing sample, the source's 1,000-row check, chunks.
    assert reads and all(rows is not None or chunk is not None for chunk, rows in reads), reads
    assert max(chunk or 0 for chunk, _ in reads) <= 1000 and max(rows or 0 for _, rows in reads) <= 300
    assert am.raw_task_.rows == 3000 and am.score(str(tmp_path / "big.csv"), y="label") > 0.7
