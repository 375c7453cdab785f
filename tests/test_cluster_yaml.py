"""cluster.yaml passes Ray's own cluster-config validation (the schema `ray up` checks)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_is_valid_for_ray_up():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # raises on any schema error
    assert config["provider"]["type"] == "aws"
    assert any("pip install -q -e ~/runner" in c for c in config["setup_commands"])
    assert config["available_node_types"]["gpu_worker"]["min_workers"] == 0


def test_ray_rejects_a_schema_error_in_cluster_yaml():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["max_workers"] = "many"
    with pytest.raises(jsonschema.ValidationError) as e:
        validate_config(prepare_config(config))
    assert e.value.message == "'many' is not of type 'integer'"
    assert list(e.value.path) == ["max_workers"] and e.value.validator == "type"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(head_node_type="cpu_head"), "`head_node_type` must be one of `available_node_types`."),
        (
            lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=5),
            "The specified global `max_workers` is smaller than the sum of `min_workers`",
        ),
    ],
)
def test_ray_rejects_inconsistent_node_types(edit, message):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    edit(config)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        validate_config(prepare_config(config))
