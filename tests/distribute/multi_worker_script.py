"""One worker of a `MultiWorkerMirroredStrategy` run: trains the learner cases named on the
command line and writes their per-step losses and final weights to `--out` (JSON).

python multi_worker_script.py --index 0 --ports 23456,23457 --cases protonet,maml --out w0.json
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

parser = argparse.ArgumentParser()
parser.add_argument("--index", type=int, required=True)
parser.add_argument("--ports", required=True, help="comma-separated, one per worker")
parser.add_argument("--cases", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
workers = [f"127.0.0.1:{port}" for port in args.ports.split(",")]
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.index}})

import tfmeta  # noqa: E402,F401  (before TensorFlow: its environment defaults)
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: before any other op

import keras  # noqa: E402

keras.config.disable_traceback_filtering()
import learner_cases  # noqa: E402

results = {}
for name in args.cases.split(","):
    run = learner_cases.train(name, strategy=strategy)
    results[name] = {"losses": [float(v) for v in run.losses], "weights": [w.tolist() for w in run.after],
                     "replicas": strategy.num_replicas_in_sync}
Path(args.out).write_text(json.dumps(results))
