"""Teaching material for the "Inside one attention head" page: small inputs, and the source document, corrected.

The project started from a (Chinese) article on "the economics of attention" whose worked example and
code are wrong. This module keeps its claims as constants, a faithful copy of its code, and the
corrected versions, all computed with attnviz's own kernel (:func:`attnviz.engine.kernel.attention_steps`):

* :func:`worked_example`: Q = K = [0.1, 0.2, 0.3, 0.4], V = [0.5, 0.6, 0.7, 0.8]. One key, so its softmax
  weight is exactly 1 and the output is V; :data:`DOCUMENT_CLAIMS` holds what the article printed instead,
  and :func:`document_arithmetic` reproduces how it got there (0.5 · V, then times V again, element-wise).
* :class:`SeedAttention` / :func:`run_seed_module`: the article's ``AttentionModel(input_dim=5, hidden_dim=3)``
  fixed (float input, scale by √d_k = √3, output 5×3), checked against PyTorch's SDPA.
* helpers for the page's editable Q/K/V tables (:func:`default_inputs`, :func:`resize`,
  :func:`matrix_to_text`, :func:`text_to_matrix`) and :func:`head_steps`, which adds an optional top-k
  budget from the project's own ``topk`` policy.

No Streamlit here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..budget import Budget
from ..engine.kernel import AttentionSteps, attention_steps
from ..policies import LayerView, TopK

__all__ = [
    "DEFAULT_TOKENS",
    "DOCUMENT_CODE",
    "DOCUMENT_CLAIMS",
    "DocumentAttentionModel",
    "DocumentClaims",
    "HeadRun",
    "MAX_DIM",
    "MAX_TOKENS",
    "SeedAttention",
    "SeedRun",
    "WORKED_K",
    "WORKED_Q",
    "WORKED_V",
    "default_inputs",
    "document_arithmetic",
    "document_module_error",
    "head_steps",
    "matrix_to_text",
    "resize",
    "run_seed_module",
    "seed_inputs",
    "seed_module_code",
    "text_to_matrix",
    "worked_example",
]

# --------------------------------------------------------------------------- the editable example

MAX_TOKENS = 8
MAX_DIM = 8
DEFAULT_TOKENS = ("the", "cat", "sat")
# Readable integers, chosen so that "sat" looks mostly at "cat" (who sat?) and "cat" at "the".
_DEFAULTS = {
    "q": [[0, 1, 0, 0], [1, 0, 0, 1], [0, 2, 1, 0]],
    "k": [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]],
    "v": [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1]],
}


def default_inputs(n: int = 3, d: int = 4) -> dict[str, np.ndarray]:
    """The page's default Q, K, V (``n`` tokens × ``d`` numbers each): the readable 3×4 example, grown or cut."""
    return {name: resize(np.array(m, dtype=np.float64), n, d) for name, m in _DEFAULTS.items()}


def resize(m: np.ndarray, n: int, d: int) -> np.ndarray:
    """``m`` cut or grown to ``n`` rows × ``d`` columns; new cells are 0, except a 1 at column ``row % d`` of new rows.

    Keeps what the user typed in the overlapping corner, and gives each new token a distinct vector.
    """
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    out = np.zeros((n, d))
    r, c = min(n, m.shape[0]), min(d, m.shape[1])
    out[:r, :c] = m[:r, :c]
    for i in range(m.shape[0], n):
        out[i, i % d] = 1.0
    return out


def matrix_to_text(m: np.ndarray) -> str:
    """Compact text for a link: rows separated by ``;``, numbers by ``,`` (``1,0.5;0,2``)."""
    return ";".join(",".join(f"{float(x):g}" for x in row) for row in np.asarray(m, dtype=np.float64))


def text_to_matrix(s: str) -> np.ndarray:
    """Inverse of :func:`matrix_to_text`; ValueError unless every row has the same count of finite numbers."""
    rows = [[float(x) for x in row.split(",")] for row in str(s).strip().split(";")]
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise ValueError(f"not a matrix: {s!r}")
    m = np.array(rows, dtype=np.float64)
    if not np.isfinite(m).all() or m.shape[0] > MAX_TOKENS or m.shape[1] > MAX_DIM:
        raise ValueError(f"numbers must be finite and at most {MAX_TOKENS}×{MAX_DIM}: {s!r}")
    return m


@dataclass(frozen=True)
class HeadRun:
    """One head on hand-given vectors: the kernel's steps, and which keys each mask removed.

    ``allowed`` is the causal mask alone (all True when not causal); ``budget_keep`` the top-k policy's keep
    mask (None without a budget). ``steps.mask`` is their combination, as the kernel used it.
    """

    steps: AttentionSteps
    allowed: torch.Tensor
    budget_keep: torch.Tensor | None

    @property
    def dropped_by_budget(self) -> torch.Tensor:
        """Pairs the causal mask allows but the budget removed (bool ``(n_q, n_k)``)."""
        if self.budget_keep is None:
            return torch.zeros_like(self.allowed)
        return self.allowed & ~self.budget_keep


def head_steps(q, k, v, causal: bool = False, top_k: int | None = None) -> HeadRun:
    """Run the kernel on ``q``, ``k``, ``v``; with ``top_k``, each query keeps only its ``top_k`` best allowed keys.

    The keep mask comes from the project's own ``topk`` policy, applied to the kernel's scaled scores, so
    this is exactly what a top-k budget does inside one head of the real model.
    """
    full = attention_steps(q, k, v, causal=causal)
    if top_k is None:
        return HeadRun(steps=full, allowed=full.mask, budget_keep=None)
    budget, allowed = Budget(TopK(), keys=int(top_k)), full.mask[None]
    view = LayerView.for_budget(0, causal, 1, allowed, budget)
    keep = budget.policy.keep(full.masked[None], allowed, budget, view)
    keep = keep.expand(1, *full.mask.shape)[0] & full.mask
    return HeadRun(steps=attention_steps(q, k, v, causal=causal, keep=keep), allowed=full.mask, budget_keep=keep)


# --------------------------------------------------------------------------- the document's worked example

WORKED_Q = (0.1, 0.2, 0.3, 0.4)
WORKED_K = (0.1, 0.2, 0.3, 0.4)
WORKED_V = (0.5, 0.6, 0.7, 0.8)


@dataclass(frozen=True)
class DocumentClaims:
    """What the source article printed (section 4.2 and 5.4)."""

    weights: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5)
    intermediate: tuple[float, ...] = (0.25, 0.3, 0.35, 0.4)  # "softmax(...)·V"
    output: tuple[float, ...] = (0.125, 0.18, 0.245, 0.32)  # that, "·V" once more
    module_output: tuple[tuple[float, ...], ...] = ((0.5,), (0.3333,), (0.1667,), (0.0,), (0.0,))  # printed 5×1

    @property
    def module_output_shape(self) -> tuple[int, int]:
        return (len(self.module_output), len(self.module_output[0]))


DOCUMENT_CLAIMS = DocumentClaims()


def worked_example() -> AttentionSteps:
    """The article's example through our kernel: one query, one key, so the weight is exactly 1 and output == V."""
    f64 = torch.float64  # so 0.1 stays the float64 0.1 the page shows
    return attention_steps(torch.tensor(WORKED_Q, dtype=f64), torch.tensor([WORKED_K], dtype=f64),
                           torch.tensor([WORKED_V], dtype=f64))


def document_arithmetic() -> dict[str, np.ndarray]:
    """How the article's numbers arise: an invented weight 0.5 times V element-wise, then times V again.

    ``intermediate`` = 0.5 · V and ``output`` = 0.5 · V · V (element-wise); neither is attention.
    """
    v = np.array(WORKED_V)
    weights = np.array(DOCUMENT_CLAIMS.weights)
    return {"intermediate": weights * v, "output": weights * v * v}


# --------------------------------------------------------------------------- the document's module, and the fix


class DocumentAttentionModel(nn.Module):
    """The article's ``AttentionModel``, as printed (kept only to show what goes wrong)."""

    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.query_dim = hidden_dim
        self.key_dim = input_dim
        self.value_dim = input_dim
        self.query_linear = nn.Linear(input_dim, hidden_dim)
        self.key_linear = nn.Linear(input_dim, hidden_dim)
        self.value_linear = nn.Linear(input_dim, hidden_dim)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, inputs):
        queries = self.query_linear(inputs)
        keys = self.key_linear(inputs)
        values = self.value_linear(inputs)

        attention_weights = self.softmax(
            torch.matmul(queries, keys.transpose(0, 1)) / torch.sqrt(torch.tensor(self.key_dim))
        )
        attention_output = torch.matmul(attention_weights, values)
        return attention_output


class SeedAttention(nn.Module):
    """The article's AttentionModel, corrected."""

    def __init__(self, input_dim, hidden_dim):
        super().__init__()
        self.query_linear = nn.Linear(input_dim, hidden_dim)
        self.key_linear = nn.Linear(input_dim, hidden_dim)
        self.value_linear = nn.Linear(input_dim, hidden_dim)
        # Fix 2: scale by the size of the keys (hidden_dim).
        self.d_k = hidden_dim

    def project(self, inputs):
        x = torch.as_tensor(inputs)
        if not x.is_floating_point():
            # Fix 1: nn.Linear needs floats: convert.
            x = x.to(self.query_linear.weight.dtype)
        q = self.query_linear(x)
        k = self.key_linear(x)
        v = self.value_linear(x)
        return q, k, v

    def forward(self, inputs):
        q, k, v = self.project(inputs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)
        weights = torch.softmax(scores, dim=-1)  # rows sum to 1
        output = weights @ v  # one row per token: 5x3, not 5x1
        return output, weights


@dataclass(frozen=True)
class SeedRun:
    """The corrected module on the article's one-hot input, with every check the page shows."""

    seed: int
    inputs: torch.Tensor  # the article's integer 5×5 identity, as given
    q: torch.Tensor  # projections (5×3, float32)
    k: torch.Tensor
    v: torch.Tensor
    output: torch.Tensor  # the module's output (5×3)
    weights: torch.Tensor  # the module's weights (5×5)
    steps: AttentionSteps  # attnviz's kernel on the same q, k, v
    sdpa: torch.Tensor  # torch.nn.functional.scaled_dot_product_attention on the same q, k, v
    document_output: torch.Tensor  # the article's module with the same weights and float input (√5 scaling)

    @property
    def max_diff_sdpa(self) -> float:
        return float((self.output - self.sdpa).abs().max())

    @property
    def max_diff_kernel(self) -> float:
        return float((self.output.double() - self.steps.output).abs().max())

    @property
    def max_diff_document(self) -> float:
        """How far the article's √5 scaling moves the output (same weights, float input)."""
        return float((self.output - self.document_output).abs().max())


def seed_inputs() -> torch.Tensor:
    """The article's input: five one-hot rows, written as integers (``torch.tensor([[1, 0, 0, 0, 0], ...])``)."""
    return torch.eye(5, dtype=torch.int64)


def run_seed_module(seed: int = 0) -> SeedRun:
    """Build :class:`SeedAttention(5, 3) <SeedAttention>` after ``torch.manual_seed(seed)`` and run every check."""
    torch.manual_seed(seed)
    model = SeedAttention(input_dim=5, hidden_dim=3)
    torch.manual_seed(seed)
    document = DocumentAttentionModel(input_dim=5, hidden_dim=3)  # same seed, same order: same Linear weights
    inputs = seed_inputs()
    with torch.no_grad():
        output, weights = model(inputs)
        q, k, v = model.project(inputs)
        sdpa = F.scaled_dot_product_attention(q[None], k[None], v[None])[0]
        document_output = document(inputs.float())
    return SeedRun(seed=seed, inputs=inputs, q=q, k=k, v=v, output=output, weights=weights,
                   steps=attention_steps(q, k, v), sdpa=sdpa, document_output=document_output)


DOCUMENT_CODE = """\
import torch
import torch.nn as nn

class AttentionModel(nn.Module):
    def __init__(self, input_dim, hidden_dim):
        super(AttentionModel, self).__init__()
        self.query_dim = hidden_dim
        self.key_dim = input_dim
        self.value_dim = input_dim
        self.query_linear = nn.Linear(input_dim, hidden_dim)
        self.key_linear = nn.Linear(input_dim, hidden_dim)
        self.value_linear = nn.Linear(input_dim, hidden_dim)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, inputs):
        queries = self.query_linear(inputs)
        keys = self.key_linear(inputs)
        values = self.value_linear(inputs)

        attention_weights = self.softmax(torch.matmul(queries, keys.transpose(0, 1)) / torch.sqrt(torch.tensor(self.key_dim)))
        attention_output = torch.matmul(attention_weights, values)
        return attention_output

# 测试代码 (test code)
model = AttentionModel(input_dim=5, hidden_dim=3)
inputs = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
output = model(inputs)
print(output)
"""  # noqa: E501 (verbatim from the article, sections 5.2 and 5.4)

_SEED_USAGE = """

torch.manual_seed({seed})
model = SeedAttention(input_dim=5, hidden_dim=3)
# The article's input: five one-hot tokens, as integers.
inputs = torch.eye(5, dtype=torch.int64)
output, weights = model(inputs)  # 5x3 and 5x5
print(output)
"""


def seed_module_code(seed: int = 0) -> str:
    """Runnable source of the corrected module and its test, exactly the code :func:`run_seed_module` runs."""
    import inspect

    header = "import math\n\nimport torch\nimport torch.nn as nn\n\n\n"
    return header + inspect.getsource(SeedAttention) + _SEED_USAGE.format(seed=int(seed))


def document_module_error() -> str:
    """The error the article's own code raises on its own integer input (``"ExceptionType: message"``)."""
    torch.manual_seed(0)
    model = DocumentAttentionModel(input_dim=5, hidden_dim=3)
    try:
        with torch.no_grad():
            model(seed_inputs())
    except (RuntimeError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""
