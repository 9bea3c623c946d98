"""Sizes: the compiled module holds where the capture's guards do, checks its input, and the
certificate says where; a window that covers the map only at the example's size is no mean.

Each model here was certified by the base compiler and then differed from the original at
another size (or had another output shape): now the compiled module either equals the
original at the listed sizes or refuses the size with a :class:`SizeError`.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import et
from et.compiler.sizes import SizeCondition, SizeError, exact_size, require_size
from et.compiler.verify import LARGER_BY, verification_sizes


class SizeBranch(nn.Module):
    """``0.5·conv(x) + x`` on images of more than 4096 pixels, ``conv(x) + x`` otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        height, width = x.shape[-2:]
        return 0.5 * y + x if height * width > 4096 else y + x


class WidthDivided(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) / (x.shape[-1] // 4)


class SquareGlobalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), x.shape[-1])


class GlobalPoolBothSides(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        height, width = y.shape[-2:]
        return F.avg_pool2d(y, kernel_size=[height, width])


def _fixed_pool() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 2, stride=2), nn.AvgPool2d(4))


def _same_or_refused(model: nn.Module, compiled: nn.Module, size: tuple[int, int]) -> str:
    """ "same" when the compiled module equals ``model`` on random inputs of ``size`` (float32,
    a few ulps), "refused" when it raises :class:`SizeError`; fails otherwise."""
    torch.manual_seed(size[0] * 1000 + size[1])
    x = torch.rand(2, 3, *size)
    try:
        with torch.no_grad():
            got = compiled(x)
    except SizeError as error:
        assert "holds only for inputs with" in str(error)
        return "refused"
    with torch.no_grad():
        expected = model(x)
    assert got.shape == expected.shape, size
    assert torch.allclose(got, expected, rtol=0, atol=1e-5), (size, (got - expected).abs().max())
    return "same"


def _compile(model: nn.Module, side: int) -> et.compiler.Compiled:
    torch.manual_seed(0)
    return et.compile(model.eval(), (torch.rand(1, 3, side, side),))


def test_a_branch_on_the_pixel_count_holds_only_on_its_side_of_the_threshold() -> None:
    torch.manual_seed(1)
    model = SizeBranch().eval()
    compiled = _compile(model, 32)
    results = {s: _same_or_refused(model, compiled.module, (s, s)) for s in (32, 33, 64, 65, 128)}
    assert results == {32: "same", 33: "same", 64: "same", 65: "refused", 128: "refused"}
    assert "w*h <= 4096" in compiled.certificate.sizes


def test_a_divisor_read_from_the_width_is_computed_at_every_size() -> None:
    torch.manual_seed(2)
    model = WidthDivided().eval()
    compiled = _compile(model, 8)
    for side in (8, 9, 12, 16, 21):
        assert _same_or_refused(model, compiled.module, (side, side)) == "same"


def test_a_fixed_pool_window_is_no_global_mean_at_other_sizes() -> None:
    torch.manual_seed(3)
    model = _fixed_pool().eval()
    compiled = _compile(model, 8)
    results = {s: _same_or_refused(model, compiled.module, (s, s)) for s in (8, 10, 16)}
    assert results[8] == "same"
    assert results[16] == "refused"  # a 2×2 pooled map there: the graph assumed 1×1
    assert compiled.certificate.sizes != "any"
    assert "G11" not in compiled.certificate.rules_used()


def test_a_pool_over_the_input_width_is_the_mean_on_every_square_image() -> None:
    torch.manual_seed(4)
    model = SquareGlobalPool().eval()
    compiled = _compile(model, 8)
    for side in (8, 12, 17):
        assert _same_or_refused(model, compiled.module, (side, side)) == "same"
    # on a 12×9 image the 9×9 window misses three rows (no mean): the size is refused
    assert _same_or_refused(model, compiled.module, (12, 9)) == "refused"
    assert "G11" in compiled.certificate.rules_used()
    assert "h == w" in compiled.certificate.sizes or "w == h" in compiled.certificate.sizes


def test_a_pool_over_both_input_sides_is_the_mean_at_any_size() -> None:
    torch.manual_seed(5)
    model = GlobalPoolBothSides().eval()
    compiled = _compile(model, 8)
    for size in ((8, 8), (12, 17), (31, 6)):
        assert _same_or_refused(model, compiled.module, size) == "same"
    assert compiled.certificate.ops_after.get("avg_pool2d.default", 0) == 0


def test_a_static_capture_holds_at_the_example_size_only(monkeypatch) -> None:
    import et.compiler.pipeline as pipeline

    real = pipeline.capture

    def static_only(model, example, *, dynamic):
        if dynamic:
            raise pipeline.CaptureError("no dynamic capture in this test")
        return real(model, example, dynamic=dynamic)

    monkeypatch.setattr(pipeline, "capture", static_only)
    torch.manual_seed(6)
    model = WidthDivided().eval()
    compiled = _compile(model, 8)
    assert compiled.certificate.sizes == "h == 8 and w == 8"
    assert compiled.certificate.verified_sizes == [[8, 8]]
    assert _same_or_refused(model, compiled.module, (8, 8)) == "same"
    assert _same_or_refused(model, compiled.module, (12, 12)) == "refused"


def test_the_size_check_survives_an_export_of_the_compiled_module() -> None:
    torch.manual_seed(7)
    model = SizeBranch().eval()
    compiled = _compile(model, 32)
    batch = torch.rand(2, 3, 32, 32)
    sizes = ({0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    program = torch.export.export(compiled.module.eval(), (batch,), dynamic_shapes=sizes)
    exported = program.module()
    x = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        assert torch.allclose(exported(x), model(x), rtol=0, atol=1e-5)
    with pytest.raises(Exception, match="4096"):
        exported(torch.rand(1, 3, 65, 65))


# the condition and the check themselves


def test_require_size_passes_the_input_through_or_names_the_condition() -> None:
    x = torch.rand(1, 3, 8, 12)
    assert require_size(x, ("h >= 2", "w*h <= 4096")) is x
    with pytest.raises(SizeError, match=r"h == 8 and w == 8 .*got 1×3×8×12"):
        require_size(x, exact_size(8, 8).checks)


def test_a_condition_without_checks_holds_everywhere_and_reads_any() -> None:
    assert SizeCondition().text == "any"
    assert SizeCondition().holds(1, 3, 1, 10**6)
    assert exact_size(5, 7).holds(4, 3, 5, 7) and not exact_size(5, 7).holds(4, 3, 7, 5)


@given(height=st.integers(1, 200), width=st.integers(1, 200), kernel=st.integers(1, 30))
def test_verification_sizes_are_the_example_an_odd_size_and_a_larger_one(
    height: int, width: int, kernel: int
) -> None:
    sizes = verification_sizes((3, height, width), SizeCondition(), kernel)
    assert sizes[0] == (3, height, width)
    assert len(sizes) == 3 and len(set(sizes)) == 3
    odd, larger = sizes[1], sizes[2]
    assert odd[1] % 2 == 1 and odd[2] % 2 == 1 and odd[1] != odd[2]
    assert odd[1] > height and odd[2] > width
    least = max(LARGER_BY, kernel)
    assert larger[1] >= height + least and larger[2] >= width + least


def test_verification_sizes_keep_to_the_condition() -> None:
    assert verification_sizes((3, 8, 8), exact_size(8, 8)) == [(3, 8, 8)]
    within = SizeCondition(("h % 4 == 0", "w % 4 == 0"))
    sizes = verification_sizes((3, 8, 8), within)
    assert sizes == [(3, 8, 8), (3, 12, 16), (3, 16, 16)]


def test_a_traced_export_refuses_a_condition_it_cannot_keep() -> None:
    torch.manual_seed(8)
    compiled = _compile(SizeBranch().eval(), 32)
    with pytest.raises(SizeError, match="traced graph"):
        torch.jit.trace(compiled.module, torch.rand(1, 3, 32, 32))
    plain = _compile(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)), 8)
    assert plain.certificate.sizes == "h >= 2 and w >= 2"  # export's least free size
    traced = torch.jit.trace(plain.module, torch.rand(1, 3, 8, 8))
    x = torch.rand(1, 3, 12, 10)
    assert torch.allclose(traced(x), plain.module(x))


def test_a_map_cropped_to_one_pixel_fixes_the_example_size() -> None:
    from tests.zoo import blocks

    model = blocks.randomize(blocks.ACBlockCropped(3, 3, 5, 2), torch.Generator().manual_seed(0))
    model = model.eval()
    compiled = _compile(model, 5)
    assert compiled.certificate.sizes == "h == 5 and w == 5"
    assert _same_or_refused(model, compiled.module, (5, 5)) == "same"
    assert _same_or_refused(model, compiled.module, (6, 7)) == "refused"
    wider = _compile(model, 7)
    for size in ((7, 7), (8, 9), (12, 11)):
        assert _same_or_refused(model, wider.module, size) == "same"
    # a 6-pixel side gives a 1-pixel map again: refused, as the certificate says
    assert _same_or_refused(model, wider.module, (6, 9)) == "refused"
    assert "(1 + (((-5) + h) // 2)) != 1" in wider.certificate.sizes


def _pool_decided_by_the_example(ws, node) -> bool:
    """The base G11: compares the map's (symbolic) size with the window, which answers for
    the example's size (the shape environment records that answer as a guard)."""
    if node.target != torch.ops.aten.avg_pool2d.default:
        return False
    size = list(node.args[0].meta["val"].shape[2:])
    if list(node.args[1]) != size:
        return False
    mean = ws.call(torch.ops.aten.mean.dim, (node.args[0], [2, 3], True), node)
    ws.record.applied("G11", [node], ("the window covers the whole captured image",))
    ws.replace(node, mean)
    return True


def test_a_rewrite_that_decides_a_symbolic_size_by_the_example_adds_its_guard(
    monkeypatch,
) -> None:
    import et.compiler.pipeline as pipeline

    monkeypatch.setattr(pipeline, "PATTERNS", (_pool_decided_by_the_example, *pipeline.PATTERNS))
    torch.manual_seed(9)
    model = _fixed_pool().eval()
    compiled = _compile(model, 8)
    assert "G11" in compiled.certificate.rules_used()  # the mean: right where the map is 4×4
    assert _same_or_refused(model, compiled.module, (8, 8)) == "same"
    assert _same_or_refused(model, compiled.module, (9, 9)) == "same"  # a 4×4 map too
    assert _same_or_refused(model, compiled.module, (10, 10)) == "refused"  # 5×5: no mean
    # the symbolic capture is kept, with the rewrite's guard (without it, the mean fails
    # verification at 9×11 and only the static capture, at 8×8, remains)
    assert "(h // 2) == 4" in compiled.certificate.sizes


def test_the_size_check_survives_saving_and_loading_the_compiled_module() -> None:
    torch.manual_seed(10)
    model = SizeBranch().eval()
    compiled = _compile(model, 32)
    buffer = io.BytesIO()
    torch.save(compiled.module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert _same_or_refused(model, loaded, (20, 24)) == "same"
    assert _same_or_refused(model, loaded, (65, 65)) == "refused"


class WholeWindowSum(nn.Module):
    """A window over the whole map divided by 2: a sum, no mean (``divisor_override``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return F.avg_pool2d(y, list(y.shape[-2:]), divisor_override=2)


def test_a_whole_window_with_a_divisor_is_no_mean_and_holds_at_the_example_size() -> None:
    torch.manual_seed(14)
    model = WholeWindowSum().eval()
    compiled = _compile(model, 8)
    assert "G11" not in compiled.certificate.rules_used()
    # export fixes both sides: the op takes an int window
    assert compiled.certificate.sizes == "h == 8 and w == 8"
    assert _same_or_refused(model, compiled.module, (8, 8)) == "same"
    assert _same_or_refused(model, compiled.module, (9, 11)) == "refused"


def test_symbolic_spellings_write_slice_ends_and_low_rank_expands_as_static_ones() -> None:
    from torch import fx

    from et.compiler.capture import INT_MAX, symbolic_spellings

    graph = fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = torch.zeros(2, 3, 4, 5)
    constant = graph.placeholder("c")
    constant.meta["val"] = torch.zeros(3, 1, 1)
    cut = graph.call_function(torch.ops.aten.slice.Tensor, (x, 2, -1, 2**62))
    wide = graph.call_function(torch.ops.aten.expand.default, (constant, [2, 3, 1, 5]))
    graph.output((cut, wide))
    symbolic_spellings(graph)
    assert cut.args == (x, 2, -1, INT_MAX)
    view = wide.args[0]
    assert view.target == torch.ops.aten.view.default and view.args == (constant, [1, 3, 1, 1])
    module = fx.GraphModule(nn.Module(), graph)
    c = torch.arange(3.0).reshape(3, 1, 1)
    xs = torch.rand(2, 3, 4, 5)
    got_cut, got_wide = module(xs, c)
    assert torch.equal(got_cut, xs[:, :, -1:]) and torch.equal(got_wide, c.expand(2, 3, 1, 5))


class KeywordPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return F.avg_pool2d(input=y, kernel_size=(y.shape[2], y.shape[3]), stride=1)


def test_a_whole_image_pool_called_with_keywords_is_the_mean_at_any_size() -> None:
    torch.manual_seed(15)
    model = KeywordPool().eval()
    compiled = _compile(model, 8)
    assert compiled.certificate.sizes == "h >= 2 and w >= 2"
    for size in ((8, 8), (13, 6)):
        assert _same_or_refused(model, compiled.module, size) == "same"
