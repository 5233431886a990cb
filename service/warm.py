"""What a worker or an agent loads once, before its loop: every work horse it forks inherits it.

RQ forks a work horse per job. Whatever the parent never loaded, each horse loads again, on the clock of the
job: measured in one assessment job of a fleet run (``bench.bench_fleet``), compiling the verdict matrix's
template took 35 ms and importing the check modules 28 ms, a quarter of a one-cluster fleet assessment. So
the parent imports the check modules and compiles every template (≈ 0.35 s once, at start).
"""

from __future__ import annotations

from incident.settings import Settings
from incident.templates import renderer_for


def warm_up(settings: Settings) -> None:
    """Import the assessment's check modules and compile every template of ``settings``' renderer."""
    from kube.checks import default_checks

    default_checks()
    renderer_for(settings.templates_dir).precompile()
