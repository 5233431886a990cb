"""A worker compiles every template before it forks its work horses (``service.warm``): nothing is left out."""

from __future__ import annotations

from incident.templates import DEFAULT_TEMPLATES_DIR, TemplateRenderer


def test_precompile_compiles_every_bundled_template() -> None:
    renderer = TemplateRenderer()
    assert renderer.precompile() == len(list(DEFAULT_TEMPLATES_DIR.glob("*.j2")))
