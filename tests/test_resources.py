"""Scheduler requests per DAG rule: defaults, config overrides, and clear errors for bad values."""

import pytest

from au_ttt.config import ConfigError
from au_ttt.resources import DEFAULTS, resolve_resources


def test_overrides_replace_only_the_keys_given():
    res = resolve_resources({"train": {"threads": 2, "gpus": 0}})
    assert res["train"].threads == 2 and res["train"].gpus == 0
    assert res["train"].mem_mb == DEFAULTS["train"].mem_mb and res["landmarks"] == DEFAULTS["landmarks"]


def test_every_rule_has_a_request_and_gpu_rules_ask_for_gpus():
    res = resolve_resources(None)
    assert all(r.threads >= 1 and r.mem_mb > 0 and r.runtime > 0 for r in res.values())
    assert {name for name, r in res.items() if r.gpus} == {"pretrain", "train", "cross_domain"}


@pytest.mark.parametrize(("overrides", "named"), [
    ({"trian": {"threads": 1}}, "trian"),
    ({"train": {"cores": 4}}, "cores"),
    ({"train": {"threads": 0}}, "train.threads"),
    ({"train": {"mem_mb": "32G"}}, "train.mem_mb"),
    ({"train": {"gpus": -1}}, "train.gpus"),
])
def test_bad_requests_are_named(overrides, named):
    with pytest.raises(ConfigError, match=named):
        resolve_resources(overrides)
