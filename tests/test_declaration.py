"""The declaration is read, not retyped: server limits narrow the declared bounds."""

from __future__ import annotations

import pytest

from kekong.declaration import spec
from kekong.errors import ParameterError
from kekong.request import build_request
from kekong.server.config import Limits, limit_range


def test_limits_default_to_the_declared_bounds():
    limits = Limits()
    assert limits.max_steps == spec("steps").le and limits.max_side == spec("width").le
    assert limit_range("max_batch") == (1, spec("batch_size").le * spec("batch_count").le)


def test_server_limits_narrow_each_field_they_bound():
    limits = Limits(max_steps=40, max_side=128, max_batch=2)
    assert limits.spec("steps").le == 40 and limits.spec("hr_second_pass_steps").le == 40
    assert {limits.spec(name).le for name in ("width", "height", "hr_resize_x", "seed_resize_from_h")} == {128}
    assert limits.spec("batch_size").le == 2 and limits.spec("steps").default == 20
    assert Limits(max_steps=10).spec("steps").default == 10  # a default above the limit comes down to it
    assert limits.spec("cfg_scale") == spec("cfg_scale")  # fields no limit bounds are as declared
    with pytest.raises(ParameterError, match="steps: this server allows at most 40"):
        limits.check(build_request(prompt="x", steps=41))
