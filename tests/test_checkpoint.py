"""Resume checks: a config field added after a workdir was made."""

import pytest

from mb2po_jax.checkpoint import RunMismatchError, check_same_run, describe_differences


def test_a_new_field_at_its_default_is_no_difference():
    saved = {"seed": 0, "awac": {"num_steps": 10}}
    defaults = {"seed": 0, "awac": {"num_steps": 500, "log_std_max": 2.0}}
    current = {"seed": 0, "awac": {"num_steps": 10, "log_std_max": 2.0}}
    assert describe_differences(saved, current, defaults=defaults) == ""
    check_same_run(saved, current, "w", defaults=defaults)
    # Without defaults, or at another value, it is a difference naming the field.
    assert "awac.log_std_max: workdir has '<absent>'" in describe_differences(saved, current)
    changed = {"seed": 0, "awac": {"num_steps": 10, "log_std_max": 0.0}}
    with pytest.raises(RunMismatchError, match="awac.log_std_max"):
        check_same_run(saved, changed, "w", defaults=defaults)
    # A field the workdir has is compared as before, whatever the default.
    with pytest.raises(RunMismatchError, match="awac.num_steps"):
        check_same_run(saved, {"seed": 0, "awac": {"num_steps": 500, "log_std_max": 2.0}}, "w",
                       defaults=defaults)
