"""cluster.yaml passes Ray's own cluster-config validation (the schema `ray up` checks)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_is_valid_for_ray_up():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # raises on any schema error
    assert config["provider"]["type"] == "aws"
    assert any("pip install -q -e ~/runner" in c for c in config["setup_commands"])
    assert config["available_node_types"]["gpu_worker"]["min_workers"] == 0


def test_ray_rejects_a_broken_cluster_yaml():
    import pytest
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["max_workers"] = "many"
    with pytest.raises(Exception):
        validate_config(prepare_config(config))
