"""The `tfmeta serve` flags and command (TF Serving's flag names where it has one).

Example:

>>> parser = argparse.ArgumentParser()
>>> add_serve_arguments(parser)
>>> serve(parser.parse_args(["--model-base-path", "saved_models/quickstart"]))
"""

from __future__ import annotations

import argparse
import logging
import os


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `tfmeta serve` flags to `parser` (imports nothing heavy)."""
    models = parser.add_argument_group("models")
    models.add_argument("--model-base-path", default=None, help="Folder of numbered versions of one model.")
    models.add_argument("--model-name", default=None, help="Its name in URLs (default: the folder's name).")
    models.add_argument("--model-config-file", default=None,
                        help="TF Serving model_config_list text file of several models (instead of --model-base-path).")
    models.add_argument("--model-version-policy", default="latest",
                        help="For --model-base-path: 'latest', 'latest:N', 'all' or 'specific:V1,V2'.")
    models.add_argument("--file-system-poll-wait-seconds", type=float, default=1.0,
                        help="How often the base paths are scanned for new and removed versions.")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1")
    net.add_argument("--port", type=int, default=8501, help="REST port (TF Serving's --rest_api_port).")
    net.add_argument("--grpc-port", type=int, default=None, help="gRPC port (off unless given).")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body-bytes", type=int, default=16 << 20, help="Larger bodies get 413.")
    limits.add_argument("--max-concurrent-requests", type=int, default=16, help="Requests running at once.")
    limits.add_argument("--max-queued-requests", type=int, default=512, help="Requests waiting; more get 503.")
    limits.add_argument("--header-timeout-seconds", type=float, default=10.0)
    limits.add_argument("--body-timeout-seconds", type=float, default=30.0)
    limits.add_argument("--keep-alive-timeout-seconds", type=float, default=30.0)
    limits.add_argument("--graceful-shutdown-seconds", type=float, default=30.0,
                        help="On SIGTERM, how long in-flight requests may take to finish.")
    batching = parser.add_argument_group("batching")
    batching.add_argument("--enable-batching", action="store_true",
                          help="Merge concurrent requests to signatures with a batch dimension.")
    batching.add_argument("--max-batch-size", type=int, default=32)
    batching.add_argument("--batch-timeout-micros", type=int, default=1000)
    batching.add_argument("--num-batch-threads", type=int, default=2)
    batching.add_argument("--allowed-batch-sizes", default="",
                          help="e.g. '8,16,32': batches are padded to one of these (the last = --max-batch-size).")


def options_from_args(args: argparse.Namespace):
    """`(model configs, ServerOptions)` from parsed `tfmeta serve` flags."""
    from tfmeta.serving.batching import BatchingOptions
    from tfmeta.serving.model_config import (
        ModelConfig,
        VersionPolicy,
        read_model_config_file,
    )
    from tfmeta.serving.server import ServerOptions

    if (args.model_base_path is None) == (args.model_config_file is None):
        raise SystemExit("tfmeta serve: give exactly one of --model-base-path or --model-config-file.")
    if args.model_config_file:
        configs = read_model_config_file(args.model_config_file)
    else:
        name = args.model_name or os.path.basename(os.path.normpath(args.model_base_path))
        configs = [ModelConfig(name, args.model_base_path, VersionPolicy.parse(args.model_version_policy))]
    batching = None
    if args.enable_batching:
        sizes = tuple(int(v) for v in args.allowed_batch_sizes.split(",") if v.strip())
        batching = BatchingOptions(args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads, sizes)
    options = ServerOptions(
        host=args.host, port=args.port, grpc_port=args.grpc_port, max_body_bytes=args.max_body_bytes,
        max_concurrent_requests=args.max_concurrent_requests, max_queued_requests=args.max_queued_requests,
        header_timeout_s=args.header_timeout_seconds, body_timeout_s=args.body_timeout_seconds,
        keep_alive_timeout_s=args.keep_alive_timeout_seconds,
        graceful_shutdown_timeout_s=args.graceful_shutdown_seconds,
        poll_interval_s=args.file_system_poll_wait_seconds, batching=batching,
    )
    return configs, options


def serve(args: argparse.Namespace) -> int:
    """Runs `tfmeta serve` until SIGTERM or Ctrl-C (in-flight requests finish first)."""
    from tfmeta.serving.server import ModelServer, run_until_signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configs, options = options_from_args(args)
    server = ModelServer(configs, options)
    for config in configs:
        print(f"Serving {config.name} from {config.base_path} on "
              f"http://{options.host}:{server.port}/v1/models/{config.name}", flush=True)
    if server.grpc_port is not None:
        print(f"gRPC on {options.host}:{server.grpc_port}", flush=True)
    run_until_signal(server)
    return 0
