"""The ``etds_compile`` fixture for hand-written tests.

``etds_compile(model, example, domain=(0, 1), **options)`` calls :func:`et.compile` (``example``
a tensor or a tuple of tensors, ``options`` passed on: ``output_clamp``, ``tolerance``,
``align``) and returns its :class:`~et.compiler.Compiled` result; each certificate is attached
to the test's report as the section ``etds certificate``, which pytest prints when the test
fails. A failed verification raises, as :func:`et.compile` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def etds_compile(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``etds_compile(model, example, domain=(0, 1), **options)``: :func:`et.compile` whose
    certificate is shown with the test's failure."""

    def compile_and_attach(model, example, domain=(0.0, 1.0), **options):
        import torch

        import et
        from etds.pytest_plugin.checks import quiet_export_trace

        inputs = (example,) if isinstance(example, torch.Tensor) else tuple(example)
        with quiet_export_trace():
            compiled = et.compile(model, inputs, domain=domain, **options)
        request.node.add_report_section("call", "etds certificate", compiled.certificate.to_json())
        return compiled

    return compile_and_attach
