"""TF Serving's model_config_list files and version policies."""

import pytest

from tfmeta.serving.model_config import VersionPolicy, parse_model_config_text

CONFIG = """
model_config_list {
  config { name: "digits" base_path: "/models/digits" model_platform: "tensorflow" }
  config {
    name: "omniglot" base_path: "omniglot" model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 3 } }
  }
  config { name: "all" base_path: "/m/all" model_version_policy { all {} } }
  config { name: "two" base_path: "/m/two" model_version_policy { latest { num_versions: 2 } } }
}
"""


def test_a_tf_serving_config_file_gives_each_model_its_path_and_policy():
    configs = {c.name: c for c in parse_model_config_text(CONFIG, relative_to="/etc/serving")}
    assert configs["digits"].base_path == "/models/digits"
    assert configs["omniglot"].base_path == "/etc/serving/omniglot"  # relative to the file
    assert configs["digits"].policy == VersionPolicy("latest", 1)
    assert configs["omniglot"].policy == VersionPolicy("specific", versions=(1, 3))
    assert configs["all"].policy == VersionPolicy("all")
    assert configs["two"].policy == VersionPolicy("latest", 2)


def test_policies_select_the_versions_tf_serving_would():
    on_disk = [3, 1, 7, 5]
    assert VersionPolicy.parse("latest").select(on_disk) == [7]
    assert VersionPolicy.parse("latest:2").select(on_disk) == [5, 7]
    assert VersionPolicy.parse("all").select(on_disk) == [1, 3, 5, 7]
    assert VersionPolicy.parse("specific:1,5,9").select(on_disk) == [1, 5]


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' } }", "base_path"),
    ("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' base_path: '/b' } }", "unique"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }", "model_platform"),
    ("model_config_list { nonsense: 1 }", "Invalid model config"),
    ("", "model_config_list"),
])
def test_bad_config_files_are_named_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_config_text(text)


@pytest.mark.parametrize("flag", ["newest", "latest:0", "specific:", "specific:x", "all:2"])
def test_bad_policy_flags_are_named_errors(flag):
    with pytest.raises(ValueError, match="model-version-policy|num_versions|versions"):
        VersionPolicy.parse(flag)


def test_serve_flags_become_model_configs_and_server_options(tmp_path):
    import argparse

    from tfmeta.serving.cli import add_serve_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    configs, options = options_from_args(parser.parse_args([
        "--model-base-path", "saved_models/digits", "--model-version-policy", "specific:2,3",
        "--grpc-port", "8500", "--max-body-bytes", "1000", "--enable-batching", "--max-batch-size", "16",
        "--allowed-batch-sizes", "4,16"]))
    assert [(c.name, c.policy.versions) for c in configs] == [("digits", (2, 3))]
    assert (options.grpc_port, options.max_body_bytes) == (8500, 1000)
    assert options.batching.max_batch_size == 16 and options.batching.allowed_batch_sizes == (4, 16)
    (tmp_path / "models.config").write_text(CONFIG)
    configs, options = options_from_args(parser.parse_args(["--model-config-file", str(tmp_path / "models.config")]))
    assert [c.name for c in configs] == ["digits", "omniglot", "all", "two"] and options.batching is None
    with pytest.raises(SystemExit, match="exactly one"):
        options_from_args(parser.parse_args([]))
