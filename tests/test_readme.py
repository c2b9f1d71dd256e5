"""The README's promises hold: its commands, its Python examples and its serving example run as
written, so they cannot rot.

The Python examples are executed exactly as the README prints them (in a temporary working
directory), and the serving example starts `tfmeta serve` and runs the README's own request
commands against it, with only the port changed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
INSTALL_AND_RUN = "pip install -e . && tfmeta quickstart"
INSTALL_AND_TEST = 'pip install -e ".[test]" && python -m pytest -q'
README_PORT = "8501"


def code_blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def python_block(marker: str) -> str:
    """The one Python block of the README that contains `marker`."""
    blocks = [b for b in code_blocks("python") if marker in b]
    assert len(blocks) == 1, f"expected one README python block with {marker!r}, found {len(blocks)}"
    return blocks[0]


def run_readme_block(code: str, name: str) -> dict:
    """Executes a README block as a script and returns its global namespace."""
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"README.md:{name}", "exec"), namespace)
    return namespace


def test_readme_is_short_and_its_test_command_is_what_ci_runs():
    assert len(README.encode("utf-8")) <= 10 * 1024
    assert INSTALL_AND_RUN in README and INSTALL_AND_TEST in README
    ci = (REPO / ".ci" / "run").read_text()
    # CI installs with the README's extras, then runs the README's pytest command, nothing else.
    assert re.search(r'-m pip install .*-e "\.\[test\]"\s*$', ci, flags=re.M)
    assert re.search(r'-m pytest -q\s*$', ci, flags=re.M)
    assert "slow:" in (REPO / "pytest.ini").read_text()


def test_every_python_example_is_tested():
    # A new Python block in the README needs its own test here.
    markers = ("tfmeta.AutoModel(", "tfmeta.PrototypicalNetwork(")
    blocks = code_blocks("python")
    assert len(blocks) == len(markers)
    for marker in markers:
        python_block(marker)


@pytest.mark.slow
def test_automodel_example_fits_a_raw_table_and_the_reload_predicts_the_same(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFMETA_DATA_DIR", str(data_dir))
    ns = run_readme_block(python_block("tfmeta.AutoModel("), "automodel")
    am, rows, path, request = ns["am"], ns["rows"], ns["path"], ns["request"]
    assert Path(path).resolve() == (tmp_path / "saved_models" / "taxis" / "1").resolve()
    meta = json.loads((Path(path) / "tfmeta.json").read_text())
    kinds = {c["name"]: c["kind"] for c in meta["input_spec"]["columns"]}
    assert kinds["pickup"] == "datetime" and kinds["pickup_zone"] == "categorical" and kinds["fare"] == "numeric"
    assert "payment" not in kinds
    # cash or credit card: the tip column all but gives it away, well above the majority class (~0.72).
    frame = ns["pd"].read_csv(ns["csv"])
    assert am.score(frame.tail(1000), y="payment") > 0.85
    # The SavedModel, reloaded without tfmeta, answers the raw rows as AutoModel does.
    served = ns["serving"](**request)
    np.testing.assert_allclose(served["probabilities"].numpy(), am.predict_proba(rows), atol=1e-5)
    assert [c.decode() for c in served["classes"].numpy()] == list(am.predict(rows))


@pytest.mark.slow
def test_prototypical_network_example_learns_held_out_alphabets(tmp_path, monkeypatch, data_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFMETA_DATA_DIR", str(data_dir))
    ns = run_readme_block(python_block("tfmeta.PrototypicalNetwork("), "protonet")
    result, test = ns["result"], ns["test"]
    assert set(test.alphabets) == {"Balinese", "Korean"}
    assert not set(ns["train"].alphabets) & set(test.alphabets)
    assert result["episodes"] == 200 and (result["ways"], result["shots"]) == (5, 1)
    # The same network untrained, on the same held-out episodes: nearest prototypes of random
    # conv4 features already beat chance (0.2), and training on the other alphabets adds more.
    untrained = ns["tfmeta"].PrototypicalNetwork(ns["tfmeta"].backbones.conv4((28, 28, 1)))
    before = untrained.evaluate_episodes(test.x, test.y, ways=5, shots=1, queries=15, episodes=200)
    assert result["accuracy"] > 0.65, result
    assert result["accuracy"] > before["accuracy"] + 0.1, (result, before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfmeta_command() -> list[str]:
    """The installed `tfmeta` script of this interpreter, else the module it runs."""
    script = Path(sys.executable).with_name("tfmeta")
    if script.exists():
        return [str(script)]
    found = shutil.which("tfmeta")
    return [found] if found else [sys.executable, "-m", "tfmeta.cli"]


def train_digits_classifier():
    """A small seeded Keras classifier of scikit-learn's digits (raw 0..16 pixels)."""
    import keras

    from tfmeta.data.digits import load_digits_splits

    keras.utils.set_random_seed(0)
    x, y = load_digits_splits(test_size=0.25, seed=0)["train"]
    model = keras.Sequential([
        keras.Input((8, 8)), keras.layers.Rescaling(1 / 16), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    return model


def wait_until_serving(url: str, server: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"tfmeta serve exited with {server.returncode}: {server.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    raise AssertionError(f"tfmeta serve did not answer {url} within {timeout_s} s")


def test_serving_example_answers_the_readmes_curl_commands(tmp_path):
    from tfmeta.export import export_classifier

    bash = [b for b in code_blocks("bash") if "tfmeta serve" in b or "curl" in b]
    assert len(bash) == 2, bash
    serve_line, = [ln for ln in bash[0].splitlines() if ln.startswith("tfmeta serve")]
    request_lines = [ln for ln in bash[1].splitlines() if ln.strip() and not ln.startswith("#")]
    assert README_PORT in serve_line and all(
        README_PORT in ln for ln in request_lines if ln.startswith("curl"))

    model = train_digits_classifier()
    export_classifier(model, str(tmp_path / "saved_models" / "quickstart"), {"task": "classification"})

    port = str(free_port())
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    argv = shlex.split(serve_line.replace(README_PORT, port))
    assert argv[:2] == ["tfmeta", "serve"]
    server = subprocess.Popen(tfmeta_command() + argv[1:], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/v1/models/quickstart", server)
        answers = []
        for line in request_lines:
            line = line.replace(README_PORT, port)
            if line.startswith("python "):  # this interpreter, which has the install's packages
                line = shlex.quote(sys.executable) + line[len("python"):]
            done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, (line, done.stderr)
            if line.startswith("curl"):
                answers.append(json.loads(done.stdout))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    status, prediction = answers
    assert status["model_version_status"][0]["version"] == "1"
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    # The served answers are the in-process model's on the images of the README's request file.
    images = np.asarray(json.loads((tmp_path / "request.json").read_text())["instances"], np.float32)
    assert images.shape == (3, 8, 8)
    expected = model.predict(images, verbose=0)
    rows = prediction["predictions"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], expected, rtol=1e-4, atol=1e-6)
    assert [r["classes"] for r in rows] == expected.argmax(-1).tolist()
    # and, for a trained classifier, those are the three digits the README names.
    assert [r["classes"] for r in rows] == [0, 1, 2]
