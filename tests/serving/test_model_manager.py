"""Version policies, hot load and unload, and broken versions skipped while the last good serves."""

import os
import shutil
import threading
import time

import numpy as np
import pytest
from serving_helpers import FEATURES, copy_version, http

from tfmeta.serving.errors import ServingError
from tfmeta.serving.model_config import ModelConfig, VersionPolicy
from tfmeta.serving.model_manager import ModelManager
from tfmeta.serving.servable import Servable
from tfmeta.serving.server import ModelServer, ServerOptions


def predict(manager, version=None):
    servable = manager.get("clf", version)
    return servable.version, servable.run("serving_default", {"x": FEATURES})["probabilities"]


def counting_loader(calls):
    def load(name, version, path, batching):
        calls.append(version)
        return Servable.load(name, version, path, batching)

    return load


@pytest.mark.parametrize("policy, loaded", [("latest", [2]), ("all", [1, 2]), ("specific:1", [1])])
def test_the_version_policy_chooses_the_served_versions(tmp_path, tiny_exports, policy, loaded):
    base = tmp_path / "clf"
    for version in (1, 2):
        copy_version(tiny_exports[version], base, version)
    manager = ModelManager([ModelConfig("clf", str(base), VersionPolicy.parse(policy))])
    manager.poll(settled=True)
    assert [s.version for s in manager.status("clf")] == sorted(loaded, reverse=True)
    version, probabilities = predict(manager)  # no version: the newest served one
    assert version == max(loaded)
    expected = tiny_exports["models"][version].predict(FEATURES, verbose=0)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    for other in {1, 2} - set(loaded):
        with pytest.raises(ServingError, match=f"Specific\\(clf, {other}\\)") as error:
            manager.get("clf", other)
        assert error.value.http_status == 404
    manager.stop()


def test_a_new_version_is_loaded_and_a_removed_one_unloaded(model_base, tiny_exports):
    # settle_s: a copy counts as finished only once unchanged for two scans, however old its files
    manager = ModelManager([ModelConfig("clf", str(model_base))], settle_s=1e9)
    manager.poll(settled=True)
    assert predict(manager)[0] == 1
    copy_version(tiny_exports[2], model_base, 2)
    manager.poll()
    assert [s.version for s in manager.status("clf")] == [1]  # not loaded while it may be changing
    manager.poll()  # unchanged since the last scan: settled
    assert [s.version for s in manager.status("clf")] == [2]  # latest: version 1 unloaded
    shutil.rmtree(model_base / "2")
    manager.poll()
    assert predict(manager)[0] == 1  # the newest version on disk again
    shutil.rmtree(model_base / "1")
    manager.poll()
    with pytest.raises(ServingError, match="Latest\\(clf\\)"):
        manager.get("clf")
    manager.stop()


def test_broken_versions_are_skipped_logged_and_retried_only_when_they_change(model_base, tiny_exports, caplog):
    calls = []
    manager = ModelManager([ModelConfig("clf", str(model_base))], loader=counting_loader(calls))
    manager.poll(settled=True)
    (model_base / "2").mkdir()  # empty
    truncated = copy_version(tiny_exports[1], model_base, 3)
    with open(truncated / "saved_model.pb", "r+b") as f:
        f.truncate(os.path.getsize(truncated / "saved_model.pb") // 2)
    half = model_base / "4"  # a copy caught half-way: the graph, not yet the variables
    half.mkdir()
    shutil.copy2(os.path.join(tiny_exports[2], "saved_model.pb"), half / "saved_model.pb")
    for _ in range(3):  # an empty folder is tried once it has stayed the same for a scan
        manager.poll()
        assert predict(manager)[0] == 1  # the last good version keeps serving
    assert sorted(calls) == [1, 2, 3, 4]  # each broken one tried once, not on every scan
    states = {s.version: s for s in manager.status("clf")}
    assert states[1].state == "AVAILABLE"
    assert all(states[v].state == "END" and "Failed to load" in states[v].error_message for v in (2, 3, 4))
    assert "skipped until its directory changes" in caplog.text
    shutil.rmtree(half)  # the copy completes
    shutil.copytree(tiny_exports[2], half)
    manager.poll()
    manager.poll()
    version, probabilities = predict(manager)
    assert version == 4 and calls[-1] == 4
    np.testing.assert_allclose(probabilities, tiny_exports["models"][2].predict(FEATURES, verbose=0), rtol=1e-5, atol=1e-6)
    manager.stop()


def test_a_broken_version_dropped_in_under_traffic_fails_no_request(model_base, tiny_exports):
    server = ModelServer([ModelConfig("clf", str(model_base))], ServerOptions(port=0, poll_interval_s=0.05))
    answers, stop = [], threading.Event()

    def client():
        url = f"http://127.0.0.1:{server.port}/v1/models/clf:predict"
        while not stop.is_set():
            answers.append(http(url, {"instances": FEATURES.tolist()})[0])

    with server.running():
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        (model_base / "2").mkdir()
        broken = copy_version(tiny_exports[2], model_base, 3)
        os.remove(broken / "variables" / "variables.index")
        time.sleep(1.0)
        copy_version(tiny_exports[2], model_base, 4)
        deadline = time.monotonic() + 30
        while server.manager.get("clf").version != 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        served = server.manager.get("clf").version
        stop.set()
        for thread in clients:
            thread.join()
    assert served == 4 and len(answers) > 20
    assert set(answers) == {200}
