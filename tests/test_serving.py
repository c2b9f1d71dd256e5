"""`tfmeta serve`: TF Serving's REST API over an exported few-shot model."""

import json
import threading
import urllib.request

import numpy as np

from tfmeta.data.oneshot_runs import load_oneshot_runs
from tfmeta.serving import make_server


def _request(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_api_serves_status_metadata_and_predictions(exported_toy_model, toy_few_shot_model):
    base, runs = exported_toy_model
    server = make_server(base, "toy", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/toy"
    try:
        code, status = _request(url)
        assert code == 200 and status["model_version_status"][0]["state"] == "AVAILABLE"
        code, meta = _request(url + "/metadata")
        sigs = meta["metadata"]["signature_def"]["signature_def"]
        assert set(sigs) >= {"serving_default", "few_shot"}
        assert sigs["few_shot"]["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
        ep = load_oneshot_runs(runs)[0]
        body = {"signature_name": "few_shot", "inputs": {
            "support_x": ep.support_x.tolist(), "support_y": ep.support_y.tolist(), "query_x": ep.query_x[:4].tolist()}}
        code, out = _request(url + "/versions/1:predict", body)
        assert code == 200
        expected = toy_few_shot_model.predict_few_shot(ep.support_x, ep.support_y, ep.query_x[:4])
        np.testing.assert_allclose(np.array(out["outputs"]), expected, rtol=1e-5, atol=1e-6)
        code, rows = _request(url + ":predict", {"instances": ep.query_x[:2].tolist()})
        assert code == 200 and np.array(rows["predictions"]).shape == (2, 16)
        code, err = _request(url + "/versions/9:predict", {"instances": []})
        assert code == 404 and "Specific(toy, 9)" in err["error"]
        code, err = _request(url + ":predict", {"signature_name": "nope", "instances": []})
        assert code == 400 and "nope" in err["error"]
    finally:
        server.shutdown()
        server.server_close()
