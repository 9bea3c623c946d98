r"""Each theorem's statement in standard notation, as displayed LaTeX equations.

The statements are the typeset form of ``Rule.statement`` in :mod:`et` (the hypotheses are the
rule's own ``preconditions``, printed as they are). Notation (see :data:`NOTATION`):
``W \ast x + b`` is a convolution (cross-correlation, PyTorch's ``conv2d``) with geometry in the
subscript, ``\mathrm{BN}`` is eval-mode BatchNorm, ``\mathcal{P}_s`` is PixelShuffle,
``\operatorname{RI}_r`` is ``repeat_interleave`` over channels. Only standard amsmath commands
are used, so the same source renders in the PDF and on GitHub.
"""

from __future__ import annotations

NOTATION: tuple[tuple[str, str], ...] = (
    (
        r"W \ast_{s,p,d,g} x + b",
        "convolution (PyTorch's cross-correlation) of x with weight "
        "W[o, c, u, v] and bias b; stride s, zero padding p, dilation d, g groups "
        "(omitted: 1, 0, 1, 1)",
    ),
    (r"W \ast^{\top}_{s,p,a,d} x", "transposed convolution with output padding a"),
    (
        r"\mathrm{BN}(y) = \gamma \frac{y - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta",
        "BatchNorm in eval mode, per channel, running mean μ and variance σ²",
    ),
    (r"\mathcal{P}_s", "PixelShuffle: (P_s z)[c, hs + i, ws + j] = z[c s² + i s + j, h, w]"),
    (r"\operatorname{RI}_r(x)", "repeat_interleave over channels: RI_r(x)[c r + j] = x[c]"),
    (
        r"\operatorname{ReLU}(y) = \max(y, 0)",
        "rectifier; PReLU_a and LeakyReLU_a use slope a below 0",
    ),
    (r"\operatorname{clamp}(y, 0, M) = \min(\max(y, 0), M)", "clipping to [0, M]"),
    (r"[A; B],\ [A, B]", "stacking along output channels, input channels"),
)

STATEMENTS: dict[str, tuple[str, ...]] = {
    "R1": (
        r"\mathrm{BN}(W \ast x + b) = (t W) \ast x + t (b - \mu) + \beta,"
        r"\qquad t = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}",
    ),
    "R2": (
        r"W \ast \mathrm{BN}(x) + b = (W \operatorname{diag}(t)) \ast x + b"
        r" + \sum_{c,u,v} W_{\cdot,c,u,v}\, m_c",
        r"\mathrm{BN}(x) = t \odot x + m,\quad t = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}},"
        r"\quad m = \beta - t \mu",
    ),
    "R3": (
        r"\sum_{i=1}^{n} \left(W_i \ast x + b_i\right) = \Big(\sum_{i=1}^{n} \hat W_i\Big) \ast x"
        r" + \sum_{i=1}^{n} b_i,\qquad \hat W_i = W_i \text{ zero-padded, centred, to one size}",
    ),
    "R4": (
        r"W \ast_{s,p,d} x + b = \hat W \ast_{s,\,p + d\delta,\,d} x + b,"
        r"\qquad \hat W = \operatorname{pad}_0(W, \delta),\quad \delta = \tfrac{K - k}{2}",
    ),
    "R5": (
        r"W_{k \times k} \ast x + W_{1 \times k} \ast x + W_{k \times 1} \ast x + b"
        r" = \left(W_{k \times k} + \operatorname{row}(W_{1 \times k})"
        r" + \operatorname{col}(W_{k \times 1})\right) \ast x + b",
    ),
    "R6": (
        r"x = D \ast_{1,c} x,\qquad D[i, i \bmod \tfrac{C}{g}, c, c] = 1,"
        r"\ \text{else } 0,\qquad K = 2c + 1",
    ),
    "R7": (
        r"W_2 \ast \bar z + b_2 = (W_2 \circledast W_1) \ast x + b_2"
        r" + \sum_{u,v} W_2[\cdot, \cdot, u, v]\, b_1,\qquad z = W_1 x + b_1",
        r"(W_2 \circledast W_1)[o, i, u, v] = \sum_m W_2[o, m, u, v]\, W_1[m, i],"
        r"\qquad \bar z = z \text{ padded with } b_1",
    ),
    "R8": (
        r"W_2 \ast (W_1 \ast x + b_1) + b_2 = W_3 \ast x + b_2 + \sum_c W_2[c]\, b_1,"
        r"\qquad W_3[t] = \sum_{a + c = t} W_2[c]\, W_1[a]",
    ),
    "R9": (r"P\,(W \ast x + b) + \beta = (P W) \ast x + P b + \beta",),
    "R10": (
        r"\operatorname{AvgPool}_{k,s,p}(x) = A \ast_{s,p} x,"
        r"\qquad A[o, c, u, v] = \frac{\delta_{oc}}{k_h k_w}",
    ),
    "R11": (
        r"\left[W_1 \ast x + b_1; \dots; W_n \ast x + b_n\right]"
        r" = [W_1; \dots; W_n] \ast x + [b_1; \dots; b_n]",
    ),
    "R12": (
        r"\sigma \odot (M \ast_{\mathrm{dw}} x) + \beta = W \ast x + \beta,"
        r"\qquad W[o, c] = \delta_{oc}\, \sigma_c M",
    ),
    "R13": (r"\gamma \odot (W \ast x + b) = (\gamma W) \ast x + \gamma \odot b",),
    "R14": (
        r"P\,(D \ast_{\mathrm{dw}} x + \delta) + \beta = (P D) \ast x + P \delta + \beta,"
        r"\qquad (P D)[o, c] = \sum_{j} P[o, c m + j]\, D[c m + j]",
    ),
    "R15": (
        r"W \ast^{\top}_{s,p,a,d} x + b = \operatorname{crop}\left(\mathcal{P}_s\left(V \ast_{Q} x"
        r" + b \otimes \mathbf{1}_{s^2}\right)\right)",
        r"V[o s^2 + \varphi_h s + \varphi_w, c, Q + \delta_h, Q + \delta_w] = W[c, o, u_h, u_w],"
        r"\qquad \delta = \frac{\varphi + p - u d}{s}",
    ),
    "E1": (
        r"\operatorname{ReLU}(x) = \operatorname{LeakyReLU}_a(x) = \operatorname{PReLU}_a(x) = x"
        r"\qquad (x \ge 0)",
    ),
    "E2": (
        r"\operatorname{clamp}(y, 0, M) = \operatorname{ReLU}\left(M - \operatorname{ReLU}(M - y)"
        r"\right)\qquad (M \ge 0)",
        r"\operatorname{clamp}(W \ast x + b, 0, M) = \operatorname{ReLU}\left((-I) \ast"
        r" \operatorname{ReLU}\left((-W) \ast x + M - b\right) + M\right)",
    ),
    "E3": (
        r"\operatorname{RI}_r(x) = K \ast x,\qquad K[c r + j, c] = 1,",
        r"[W, K] \ast [f; x] + b = W \ast f + b + \operatorname{RI}_r(x)",
    ),
    "E4": (
        r"\begin{bmatrix} W_0 \\ 0 \\ D \end{bmatrix},\quad"
        r" \begin{bmatrix} W_i & 0 & 0 \\ 0 & 0 & 0 \\ 0 & 0 & I \end{bmatrix},\quad"
        r" \begin{bmatrix} W_L & 0 & K \end{bmatrix}:"
        r"\qquad \mathrm{net}'(x) = \mathrm{body}(x) + \operatorname{RI}_r(x)\quad (x \ge 0)",
    ),
    "E5": (
        r"\begin{bmatrix} y_b \\ y_r \end{bmatrix} = \begin{bmatrix} W_b & W_{r2b} \\"
        r" W_{b2r} & W_r \end{bmatrix} \ast \begin{bmatrix} x_b \\ x_r \end{bmatrix}"
        r" + \begin{bmatrix} b_b + b_{r2b} \\ b_r + b_{b2r} \end{bmatrix},"
        r"\qquad f\left(\begin{bmatrix} y_b \\ y_r \end{bmatrix}\right)"
        r" = \begin{bmatrix} f(y_b) \\ f(y_r) \end{bmatrix}",
    ),
    "E6": (
        r"\mathcal{P}_s(W_a \ast a + b_a) + \mathcal{P}_s(W_b \ast b + b_b)"
        r" = \mathcal{P}_s\left([W_a, W_b] \ast [a; b] + b_a + b_b\right)",
    ),
    "E7": (r"\mathcal{P}_s(f(x)) = f(\mathcal{P}_s(x))",),
    "E8": (
        r"\left([W; 0] \ast x + [b; \beta]\right)_{1..n} = W \ast x + b,"
        r"\qquad [W, 0] \ast [x; d] + b = W \ast x + b",
    ),
    "E9": (r"\operatorname{nearest}_s(x) = \mathcal{P}_s\left(\operatorname{RI}_{s^2}(x)\right)",),
    "E11": (
        r"W_2' \ast \operatorname{PReLU}_{a'}\left(W_1' \ast x + b_1'\right) + b_2"
        r" = W_2 \ast \varphi\left(W_1 \ast x + b_1\right) + b_2"
        r"\qquad (\ell \le x \le u),",
        r"W_1'[c] = -\beta_c W_1[c],\ b_1'[c] = -\beta_c b_1[c],\ a'_c = -\mu_c / \beta_c,"
        r"\ W_2'[:, c] = W_2[:, c] / \mu_c\qquad (c \in S)",
    ),
    "R24": (
        r"\operatorname{PReLU}_a(t) = \operatorname{ReLU}(t) - a\,\operatorname{ReLU}(-t),",
        r"W_2 \ast \operatorname{PReLU}_a\left(W_1 \ast x + b_1\right) + b_2"
        r" = [W_2,\ -a_S W_{2,S}] \ast \operatorname{ReLU}\left([W_1; -W_{1,S}] \ast x"
        r" + [b_1; -b_{1,S}]\right) + b_2\qquad (S = \{c : a_c \ne 0\})",
    ),
    "R25": (
        r"W_2 \ast \varphi\left(W_1 \ast x + b_1\right) + b_2"
        r" = [W_2 - E e_c^{\top},\ E] \ast \varphi'\left([W_1; W_{1,c}] \ast x"
        r" + [b_1; b_{1,c}]\right) + b_2",
    ),
    "G1": (
        r"W \ast_{s,q,d,g} \operatorname{pad}_0(x; p) + b = W \ast_{s,\,q + p,\,d,g} x + b,"
        r"\qquad \operatorname{pad}_0(\operatorname{pad}_0(x; p); p') = \operatorname{pad}_0(x;"
        r" p + p')",
    ),
    "G2": (
        r"\operatorname{fill}_c(x; l, r, t, b) = \operatorname{pad}_0(x - c;\, l, r, t, b) + c",
    ),
    "G3": (
        r"a\,(W \ast x + b) + e\,c = (a W) \ast x + a b + e c,\qquad"
        r" (a, e) = (1, \pm\alpha) \text{ for } y \pm \alpha c,\ (\pm\alpha, 1)"
        r" \text{ for } c \pm \alpha y",
    ),
    "G4": (
        r"W \ast_{s,0,d,g} (a x + e c) + b = (a W) \ast_{s,0,d,g} x + b"
        r" + e \sum_{c',u,v} W_{\cdot,c',u,v}\, c_{c'}",
    ),
    "G5": (
        r"W \ast x_{[a : e : t]} + b = W' \ast x + b,\qquad W'_{\cdot,\,a + j t} = D_{\cdot,j},"
        r"\ W'_{\cdot,c} = 0 \text{ otherwise}\quad (D \text{: W with its groups dense})",
    ),
    "G6": (
        r"[f_1(y_1); \dots; f_n(y_n)] = f([y_1; \dots; y_n]),\qquad"
        r" \theta_f = [\theta_{f_1}; \dots; \theta_{f_n}] \text{ (per-channel parameters)}",
    ),
    "G8": (r"(x + c) - c = x,\qquad (x - c) + c = x\qquad (x + c \text{ has the shape of } x)",),
    "G11": (
        r"\operatorname{avgpool}_{(H, W), s}(x) = \frac{1}{H W} \sum_{h < H,\, w < W} x_{\cdot,h,w}"
        r"\qquad (x \in \mathbb{R}^{C \times H \times W})",
    ),
    "G12": (
        r"W \ast_{s,0,d,g} x_{[a : n - b]} + b_0 = \operatorname{pad}_0(W; \tfrac{a}{d},"
        r" \tfrac{b}{d}) \ast_{s,0,d,g} x + b_0\qquad (a, b \in d\,\mathbb{N})",
    ),
    "G13": (
        r"D \ast_{1} x + b = \operatorname{blocks}_{g}(D) \ast_{g} x + b"
        r"\qquad (D \text{ zero outside } g \text{ diagonal blocks; always when } g \mid g_1)",
    ),
    "G14": (
        r"W \ast_{1,\mathrm{same},d,g} x + b = W \ast_{1,0,d,g} \operatorname{pad}_0\left(x;"
        r" \lfloor t/2 \rfloor, \lceil t/2 \rceil\right) + b,\qquad t = d(k - 1)"
        r"\text{ per axis;}\quad W \ast_{s,\mathrm{valid}} x = W \ast_{s,0} x",
    ),
    "R16": (
        r"L(\mathrm{BN}(x)) = L'(x),\quad L(\operatorname{mean}_{HW}\mathrm{BN}(x))"
        r" = L'(\operatorname{mean}_{HW} x),\qquad W' = W \operatorname{diag}(t),\ "
        r" b' = b + W(\beta - \mu t)",
    ),
    "R17": (
        r"\sum_k \alpha_k (W_k x + b_k) = \Big(\sum_k \alpha_k W_k\Big) x"
        r" + \sum_k \alpha_k b_k",
    ),
    "R18": (
        r"W \ast (z - c) + b + z = (W + I) \ast (z - c) + b + c"
        r"\qquad (I \text{: the centred identity kernel})",
    ),
    "R19": (r"\operatorname{pad}_v(y;\, l, r, t, b)_{[t : -b,\; l : -r]} = y",),
    "R20": (
        r"\sum_i \big(W_i \ast_{g_i} x + b_i\big) = \operatorname{blocks}_g\Big(\sum_i D_i\Big)"
        r" \ast_g x + \sum_i b_i\qquad (D_i \text{: } W_i \text{ dense, centred};\ g = \gcd_i g_i)",
    ),
    "R21": (
        r"L(\operatorname{tok}(\mathrm{BN}(x))) = L'(\operatorname{tok}(x)),\qquad"
        r" W' = W \operatorname{diag}(t),\ b' = b + W(\beta - \mu t)",
    ),
    "R22": (
        r"L(\max_{HW}\mathrm{BN}(x)) = L'(\max_{HW} x),\qquad W' = W \operatorname{diag}(t),\ "
        r" b' = b + W(\beta - \mu t)\qquad (t = \gamma / \sqrt{\sigma^2 + \epsilon} \ge 0)",
    ),
    "R23": (
        r"s \odot M(W z + b) = M\big(\operatorname{diag}(s) W z + s \odot b\big)"
        r"\qquad (M \text{: output feature } o \mapsto \text{channel } o)",
    ),
    "E10": (
        r"W_2 \ast \varphi(W_1 \ast x + b_1) + b_2 = W_2 \operatorname{diag}(\alpha)^{-1}"
        r" \ast \varphi\big(\operatorname{diag}(\alpha)(W_1 \ast x + b_1)\big) + b_2"
        r"\qquad (\alpha > 0)",
    ),
    "G7": (
        r"\operatorname{clone}(x) = \operatorname{copy}(x) = x_{[0 : \infty : 1]} = x,\qquad"
        r" \operatorname{pad}(x, p, \text{constant}, v) = \operatorname{pad}_v(x; p)",
    ),
    "G9": (
        r"f(c_1, \dots, c_n) = v,\quad v \text{ its value computed once}"
        r"\qquad (f \text{ pure and deterministic, } c_i \text{ constants})",
    ),
    "G15": (
        r"\operatorname{pad}_0(\operatorname{pad}_0(x; p); q) = \operatorname{pad}_0(x; p + q)"
        r"\qquad (p, q \ge 0)",
    ),
    "G16": (
        r"\mathcal{P}_r(y_1) \pm \alpha\, \mathcal{P}_r(y_2)"
        r" = \mathcal{P}_r(y_1 \pm \alpha\, y_2)",
    ),
    "C-ETDS": (
        r"\mathrm{ETDS}_{\mathrm{inf}}(I) = \operatorname{clamp}\left(\mathrm{ETDS}(I), 0, 1\right)"
        r"\qquad \text{for every input, depth and weight}",
    ),
    "C-ABPN": (
        r"\mathrm{ABPN}_{\mathrm{ET}}(x) = \operatorname{clamp}\left(\mathcal{P}_s\left("
        r"\mathrm{body}(x) + \operatorname{RI}_{s^2}(x)\right), 0, 1\right)\qquad (x \ge 0)",
    ),
    "C-ECBSR": (
        r"\mathrm{ECB}(x) = \operatorname{act}\left(\hat W \ast x + \hat b\right),\qquad"
        r" \mathrm{ECBSR}_{\mathrm{ET}}(x) = \operatorname{clamp}\left(\mathrm{ECBSR}(x), 0, 1"
        r"\right)\quad (x \ge 0)",
    ),
}


def statement_lines(rule: str) -> tuple[str, ...]:
    """The displayed equations of ``rule``'s statement (empty when none is written yet)."""
    return STATEMENTS.get(rule, ())
