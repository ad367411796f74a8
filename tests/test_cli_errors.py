"""Input checks raise ParameterError, which the CLI prints as one `error:` line (not as "unexpected")."""

from __future__ import annotations

import numpy as np
import pytest

from kekong.errors import ParameterError
from kekong.io import save_image
from tests.test_cli import kekong


@pytest.mark.parametrize(("args", "message"), [
    (["--hires", "--init", "{image}"], "hires fix is for txt2img"),
    (["--hires", "--hr-sampler", "bogus"], "unknown hires sampler 'bogus'"),
])
def test_request_checks_print_an_error_line(tmp_path, args, message):
    image = save_image(np.full((64, 64, 3), 128, np.uint8), tmp_path / "grey.png")
    done = kekong("generate", "x", *[a.format(image=image) for a in args], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "unexpected" not in done.stderr


def test_training_and_watermark_checks_are_parameter_errors():
    from kekong.provenance.watermark import payload_bits
    from kekong.train.diffusion import bias_at, sample_timesteps

    with pytest.raises(ParameterError, match="timestep bias"):
        bias_at("sideways", 0, 10)
    with pytest.raises(ParameterError, match="timestep bias"):
        sample_timesteps(1, 10, None, "sideways")
    with pytest.raises(ParameterError, match="40 bits"):
        payload_bits(1 << 40)
