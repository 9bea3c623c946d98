"""The ET compiler: fold any PyTorch network into a plain one, with a certificate.

    compiled = et.compile(model, (x,), domain=IMAGE_UNIT)
    compiled.module                 # nn.Module, same function, folded where the rules apply
    compiled.certificate.to_json()  # every rule application, what was left and why, max error

Stages: :mod:`~et.compiler.capture` (torch.export to an ATen graph),
:mod:`~et.compiler.fold_constants`, the rewrites (:mod:`~et.compiler.canonical`,
:mod:`~et.compiler.linear_rewrites`, :mod:`~et.compiler.et_rewrites`,
:mod:`~et.compiler.shuffle_rewrites`, several declared as :mod:`~et.compiler.patterns`, with
input-domain bounds from :mod:`~et.compiler.intervals`), :mod:`~et.compiler.sizes` (the input
sizes the result holds for, checked by the compiled module), :mod:`~et.compiler.verify`, and
:mod:`~et.compiler.certificate` (each application with the checks that ran at its site).
"""

from et.compiler.capture import CaptureError
from et.compiler.certificate import Application, Certificate, Check, Unfolded
from et.compiler.pipeline import Compiled, compile, count_convs
from et.compiler.sizes import SizeError
from et.compiler.verify import VerificationError

__all__ = [
    "Application",
    "CaptureError",
    "Certificate",
    "Check",
    "Compiled",
    "SizeError",
    "Unfolded",
    "VerificationError",
    "compile",
    "count_convs",
]
