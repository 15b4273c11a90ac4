"""The paper's five input-output architectures, built from one recurrent stack.

A model is fully described by a :class:`ModelConfig`; the decomposition reads the architecture
from it, never from parameter shapes. Parameter tree (Keras-like names)::

    embedding/embedding             [V, E]        (encoder-decoder: encoder_embedding,
    rnn_0 … rnn_{L-1}/{kernel,recurrent_kernel,bias}  decoder_embedding, encoder_rnn_l,
    dense/{kernel [H, C], bias [C]}                   decoder_rnn_l, dense)

Architectures (``N`` examples, ``T`` = :attr:`ModelConfig.steps` recurrent steps):

* ``one_to_one``:  Embedding → Flatten → RepeatVector(1) → RNN×L → Dense.  logits ``[N, C]``
* ``many_to_one``: Embedding → RNN×L → (Dropout) → Dense on the last step.  ``[N, C]``
* ``one_to_many``: Embedding → Flatten → RepeatVector(out_len) → RNN×L → Dense per step. ``[N, T, C]``
* ``many_to_many``: Embedding → RNN×L → Dense per step.  ``[N, T, C]``
* ``encoder_decoder``: the last encoder layer's final state is the initial state of the first
  decoder layer; decoder RNN×L → Dense(target vocabulary) per step.  ``[N, T_out, V_t]``

Decomposed modules run through the same code: ``keep`` (``[L, H]`` rolled or ``[L, T, H]`` per
step; the decoder's layers for encoder-decoder) masks the matmul inputs and outputs of every
recurrent layer (:func:`modjax.cells.cell_step`) and the rows of the next layer (paper
semantics) and of the head (both semantics).

With ``bidirectional=True`` every recurrent layer (the encoder's only, for encoder-decoder)
runs a forward and a backward scan and merges them (``merge``: ``"concat"`` or ``"sum"``) for
the next layer and the head; the recurrent params get a leading direction axis of 2 and keep
vectors a direction axis before the feature axis, ``[L, (T,) 2, F]``
(:mod:`modjax.direction`, ``docs/method.md#bidirectional``).
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from modjax import direction, validate
from modjax.cells import FORWARDS, CellConfig, zero_carry
from modjax.data.base import IO_TYPES
from modjax.layers import RNN
from modjax.precision import MATMUL_PRECISION

Array = jax.Array

ONE_OUTPUT = ("one_to_one", "many_to_one")
MANY_OUTPUT = ("one_to_many", "many_to_many")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model's architecture.

    Attributes:
      io: one of ``one_to_one``, ``many_to_one``, ``one_to_many``, ``many_to_many``,
        ``encoder_decoder``.
      cell: ``simple`` (vanilla RNN), ``lstm`` or ``gru``.
      num_classes: output classes (encoder-decoder: the target vocabulary size).
      vocab_size: Embedding input size (largest token id + 1).
      in_len: input length in tokens.
      out_len: output steps: RepeatVector count for ``one_to_many``; decoder length for
        ``encoder_decoder``; ignored otherwise (``1`` / ``in_len``).
      layers: stacked recurrent layers (the encoder and the decoder each have ``layers``).
      units: ``H`` per recurrent layer.
      embed_dim: Embedding width ``E``.
      activation: ``tanh`` or ``relu``.
      gate_activation: ``sigmoid`` or ``hard_sigmoid``.
      reset_after: GRU form.
      dropout: rate of the Dropout before the head (training only).
      mask_zero: the Embedding masks token 0 (carry held over padded steps).
      forward: ``"keras"`` (default: the equations of ``gate_activation`` and Keras's GRU) or
        ``"artifact"`` (the authors' NumPy forward pass, which computed every published number:
        logistic-sigmoid gates, and the GRU ``reset_after=False`` candidate
        ``tanh(x W_h + b_h + r ⊙ (h U_h))``; :func:`modjax.cells.cell_step`). The same choice
        serves training, tracing and every module. Configs saved before this field existed load
        as ``"keras"``.
      bidirectional: every recurrent layer runs forward and backward scans (encoder-decoder:
        the encoder's layers only; the decoder's first layer starts from the sum of the two
        directions' final states, ``docs/method.md#bidirectional``).
      merge: how a bidirectional layer's directions are merged for the next layer and the
        head: ``"concat"`` (Keras's default: ``[h_fwd, h_bwd]``, width ``2H``) or ``"sum"``.
    """

    io: str
    cell: str
    num_classes: int
    vocab_size: int
    in_len: int
    out_len: int = 1
    layers: int = 1
    units: int = 100
    embed_dim: int = 50
    activation: str = "tanh"
    gate_activation: str = "sigmoid"
    reset_after: bool = False
    dropout: float = 0.0
    mask_zero: bool = False
    forward: str = "keras"
    bidirectional: bool = False
    merge: str = "concat"

    def __post_init__(self):
        if self.io not in IO_TYPES:
            raise ValueError(f"io must be one of {IO_TYPES}, got {self.io!r}")
        for name in ("num_classes", "vocab_size", "in_len", "out_len", "layers", "units",
                     "embed_dim"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.forward not in FORWARDS:
            raise ValueError(f"forward must be one of {FORWARDS}, got {self.forward!r}")
        self.cell_config  # validates cell, activation, gate_activation (CellConfig)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if validate.real("dropout", self.dropout, lo=0.0, hi=1.0) == 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.merge not in direction.MERGES:
            raise ValueError(f"merge must be one of {direction.MERGES}, got {self.merge!r}")
        for name in ("reset_after", "mask_zero", "bidirectional"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def cell_config(self) -> CellConfig:
        """The :class:`~modjax.cells.CellConfig` shared by every recurrent layer."""
        return CellConfig(self.cell, self.units, self.activation, self.gate_activation,
                          self.reset_after, self.forward)

    def function_key(self) -> "ModelConfig":
        """This config with the settings that do not change the computed function normalised.

        Two configs with equal keys compute the same function of the same params: the gate
        activation of a SimpleRNN, ``reset_after`` outside GRUs, and ``forward="artifact"``
        where it equals Keras's equations (LSTM and SimpleRNN with sigmoid gates, GRU with
        ``reset_after=True`` and sigmoid gates) are normalised away. Use it to decide whether a
        cached checkpoint can be reused under another forward pass.
        """
        gate = "sigmoid" if (self.cell == "simple" or self.forward == "artifact") \
            else self.gate_activation
        reset_after = self.reset_after if self.cell == "gru" else False
        artifact_gru = self.cell == "gru" and not reset_after and self.forward == "artifact"
        return dataclasses.replace(self, gate_activation=gate, reset_after=reset_after,
                                   forward="artifact" if artifact_gru else "keras")

    @property
    def directions(self) -> int:
        """Directions of the decomposed stack: 2 for a bidirectional classifier or tagger, else
        1 (an encoder-decoder's decoder is unidirectional)."""
        return 2 if self.bidirectional and self.io != "encoder_decoder" else 1

    def keep_shape(self, F: int, unrolled: bool) -> tuple:
        """The shape of one module's keep vectors, ``[L, (T,) (2,) F]``: ``T`` when
        ``unrolled``, the direction axis when :attr:`directions` is 2."""
        return ((self.layers,) + ((self.steps,) if unrolled else ())
                + ((2,) if self.directions == 2 else ()) + (F,))

    @property
    def many_output(self) -> bool:
        """True for one-to-many and many-to-many (one prediction per step)."""
        return self.io in MANY_OUTPUT

    @property
    def steps(self) -> int:
        """Recurrent steps of the decomposed stack (the decoder's for encoder-decoder)."""
        if self.io == "one_to_one":
            return 1
        if self.io in ("one_to_many", "encoder_decoder"):
            return self.out_len
        return self.in_len

    def to_json(self) -> str:
        """The config as a JSON string (see :meth:`from_json`)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def _check_keep(keep, cfg: ModelConfig):
    if keep is None:
        return None
    keep = jnp.asarray(keep, jnp.float32)
    H, gH = cfg.units, cfg.cell_config.gate_width
    F = keep.shape[-1] if keep.ndim else None
    if F not in (H, gH) or keep.shape not in (cfg.keep_shape(F, False), cfg.keep_shape(F, True)):
        rolled, unrolled = cfg.keep_shape("F", False), cfg.keep_shape("F", True)
        fmt = lambda s: "[" + ", ".join(map(str, s)) + "]"
        raise ValueError(f"keep must have shape {fmt(rolled)} or {fmt(unrolled)} with F = {H} "
                         f"(units) or {gH} (gate columns), got {keep.shape}")
    return keep


def _layer_keep(keep, l):
    return None if keep is None else keep[l]


HEAD_ROWS = ("step", "last", "first", "none")


def head_row_keep(keep_l, head_rows: str = "step", bidirectional: bool = False):
    """Which rows of the head a module keeps, from the top layer's keep ``[F]`` or ``[T, F]``
    (bidirectional: ``[2, F]`` or ``[T, 2, F]``; the result is in the same per-direction layout,
    :func:`modjax.direction.merged_keep` gives the merged rows).

    ``"step"``: the rows of units kept at each step (rolled: the one keep vector); ``"last"``:
    the rows of units kept at the last step, at every step; ``"first"``: those kept at step 0,
    at every step; ``"none"``: every row (returns ``None``). For a bidirectional layer "first"
    and "last" are each direction's own (the backward direction's last step is position 0).
    See ``docs/method.md#artifact``.
    """
    if head_rows not in HEAD_ROWS:
        raise ValueError(f"head_rows must be one of {HEAD_ROWS}, got {head_rows!r}")
    if keep_l is None or head_rows == "none":
        return None
    if keep_l.ndim == 2 + bidirectional and head_rows in ("last", "first"):
        return direction.own_order(keep_l, 0, bidirectional)[-1 if head_rows == "last" else 0]
    return keep_l


def _rows(h, keep_l):
    """Mask the out-edges of removed units: ``h [N, T, H] * keep_l ([H] or [T, H])``.

    Per-gate keep vectors (``[.., gH]``) remove no unit as a whole: no rows are masked.
    """
    if keep_l is None or keep_l.shape[-1] != h.shape[-1]:
        return h
    return h * keep_l


class RNNModel(nn.Module):
    """One of the paper's architectures, chosen by ``config.io`` (see the module docstring).

    Call (classification / tagging)::

        model.apply({"params": p}, x, keep=None, u_mask="paper", train=False,
                    return_hidden=False, return_gates=False)

    with ``x [N, in_len]`` int token ids. Encoder-decoder: ``model.apply(vars, src, dec_in, ...)``
    with ``src [N, in_len]`` and ``dec_in [N, out_len]``.

    Returns ``logits`` (``[N, C]`` or ``[N, T, C]``); with ``return_hidden`` the pair
    ``(logits, {"hidden": [L, N, T, H], "gates": [L, N, T, gH] (with return_gates)})`` for the
    decomposed stack (the decoder's for encoder-decoder). Dropout needs an rng named
    ``"dropout"`` when ``train=True``. ``removed_bound`` (static) bounds the removed units per
    layer and step for the cheaper ``"code"`` masks (:func:`modjax.cells.masked_recurrent`).
    ``head_rows`` says which rows of the head a module keeps (:func:`head_row_keep`).
    ``share_projection`` computes the first layer's input projection before its scan
    (:func:`modjax.layers.scan_layer`'s ``project_inputs``; only with ``keep``), so that under
    ``jax.vmap`` over modules it is computed once for all of them.
    """

    config: ModelConfig

    def setup(self):
        c = self.config
        cc = c.cell_config
        bi = c.bidirectional
        if c.io == "encoder_decoder":
            self.encoder_embedding = nn.Embed(c.vocab_size, c.embed_dim, param_dtype=jnp.float32)
            self.decoder_embedding = nn.Embed(c.num_classes, c.embed_dim, param_dtype=jnp.float32)
            self.encoder_rnn = [RNN(cc, bidirectional=bi) for _ in range(c.layers)]
            self.decoder_rnn = [RNN(cc) for _ in range(c.layers)]
        else:
            self.embedding = nn.Embed(c.vocab_size, c.embed_dim, param_dtype=jnp.float32)
            self.rnn = [RNN(cc, bidirectional=bi) for _ in range(c.layers)]
        self.drop = nn.Dropout(c.dropout)
        self.dense = nn.Dense(c.num_classes, param_dtype=jnp.float32,
                              precision=MATMUL_PRECISION)

    # -- shared recurrent stack ---------------------------------------------------------
    def _stack(self, layers, xs, pad_mask, keep, u_mask, initial_carries, return_gates,
               removed_bound=None, share_projection=False):
        """Run stacked layers; returns (top h [N,T,H], hidden list, gates list, finals).

        Bidirectional layers: hidden and gates ``[N, T, 2, F]`` per layer, finals with a
        leading direction axis; the next layer reads the merged outputs (and, under the paper's
        semantics, the merged rows of kept units)."""
        c = self.config
        hidden, gates, finals = [], [], []
        h = xs
        for l, layer in enumerate(layers):
            bi = layer.bidirectional
            k = _layer_keep(keep, l)
            init = None if initial_carries is None else initial_carries[l]
            # share_projection: the first layer's input projection is computed once before
            # its scan; its inputs (the embeddings) are the same for every module vmapped over
            out = layer(h, initial_carry=init, pad_mask=pad_mask, keep=k,
                        return_gates=return_gates, u_mask=u_mask, removed_bound=removed_bound,
                        project_inputs=(share_projection and l == 0 and k is not None))
            hs, final = out[0], out[1]
            hidden.append(hs)
            finals.append(final)
            if return_gates:
                gates.append(out[2])
            # Out-edges into the next recurrent layer: removed in the paper's semantics only.
            h = direction.merge(hs, c.merge, bi)
            if u_mask == "paper" and l + 1 < len(layers):
                h = _rows(h, direction.merged_keep(k, c.merge, bi))
        return h, hidden, gates, finals

    def _embed_inputs(self, x):
        c = self.config
        e = self.embedding(x)  # [N, in_len, E]
        if c.io in ("one_to_one", "one_to_many"):
            flat = e.reshape(e.shape[0], -1)
            return jnp.repeat(flat[:, None, :], c.steps, axis=1), None
        pad = (x != 0) if c.mask_zero else None
        return e, pad

    def _head(self, h_top, keep, train, head_rows="step", head_keep=None):
        """Dense on the (row-masked) top hidden states ``[N, T, H]`` -> ``[N, T, C]``.

        The rows kept follow ``head_rows`` (:func:`head_row_keep`), or ``head_keep`` when given.
        """
        c = self.config
        bi = c.directions == 2
        k = None if keep is None else keep[c.layers - 1]
        rows = head_row_keep(k, head_rows, bi) if head_keep is None else head_keep
        if bi and c.io in ONE_OUTPUT:
            # the head reads each direction's last step: position T-1 forward, 0 backward
            h_top = direction.own_order(h_top, 1, bi)
            if rows is not None and rows.ndim == 3:
                rows = direction.own_order(rows, 0, bi)
        h = _rows(direction.merge(h_top, c.merge, bi), direction.merged_keep(rows, c.merge, bi))
        h = self.drop(h, deterministic=not train)
        return self.dense(h)

    def __call__(self, x, dec_in=None, *, keep=None, u_mask: str = "paper", train: bool = False,
                 return_hidden: bool = False, return_gates: bool = False,
                 removed_bound: Optional[int] = None, head_rows: str = "step",
                 share_projection: bool = False):
        c = self.config
        keep = _check_keep(keep, c)  # [L, F] (rolled) or [L, T, F]
        if c.io == "encoder_decoder":
            if dec_in is None:
                raise ValueError("dec_in (decoder input ids [N, out_len]) is required for an "
                                 "encoder_decoder model")
            enc_final = self.encode(x)
            logits, aux = self.decode(dec_in, [enc_final] + [None] * (c.layers - 1), keep=keep,
                                      u_mask=u_mask, train=train, return_gates=return_gates,
                                      removed_bound=removed_bound, head_rows=head_rows,
                                      share_projection=share_projection)
        else:
            xs, pad = self._embed_inputs(x)
            _, hidden, gates, _ = self._stack(self.rnn, xs, pad, keep, u_mask, None,
                                              return_gates, removed_bound, share_projection)
            logits = self._head(hidden[-1], keep, train, head_rows)
            if c.io in ONE_OUTPUT:
                logits = logits[:, -1]
            aux = {"hidden": jnp.stack(hidden)}
            if return_gates:
                aux["gates"] = jnp.stack(gates)
        return (logits, aux) if return_hidden else logits

    # -- encoder-decoder pieces (also used by greedy decoding) ---------------------------
    def encode(self, src):
        """Encoder pass: ``src [N, in_len]`` -> final carry of the last encoder layer (of a
        bidirectional encoder: the sum of its two directions' final carries, ``h`` and ``c``
        alike; ``docs/method.md#bidirectional``)."""
        c = self.config
        e = self.encoder_embedding(src)
        pad = (src != 0) if c.mask_zero else None
        _, _, _, finals = self._stack(self.encoder_rnn, e, pad, None, "paper", None, False)
        if c.bidirectional:
            return jax.tree_util.tree_map(lambda a: a[0] + a[1], finals[-1])
        return finals[-1]

    def decode(self, dec_in, carries, *, keep=None, u_mask="paper", train=False,
               return_gates=False, return_carries=False, removed_bound=None,
               head_rows="step", head_keep=None, share_projection=False):
        """Decoder pass from given carries.

        Args:
          dec_in: ``[N, T]`` decoder input ids (``T = 1`` for one greedy step).
          carries: list of ``L`` carries (``None`` = zeros); the first is the encoder's state.
          keep: ``[L, T, H]`` for these ``T`` steps, or ``None``.
          head_rows: which head rows the module keeps (:func:`head_row_keep`).
          head_keep: ``[H]`` or ``[T, H]`` head rows to keep, overriding ``head_rows``.
          share_projection: compute the first layer's input projection before its scan.

        Returns:
          ``(logits [N, T, V], aux)``; with ``return_carries`` also the final carries.
        """
        c = self.config
        e = self.decoder_embedding(dec_in)
        pad = (dec_in != 0) if c.mask_zero else None
        h_top, hidden, gates, finals = self._stack(self.decoder_rnn, e, pad, keep, u_mask,
                                                   carries, return_gates, removed_bound,
                                                   share_projection)
        logits = self._head(h_top, keep, train, head_rows, head_keep)
        aux = {"hidden": jnp.stack(hidden)}
        if return_gates:
            aux["gates"] = jnp.stack(gates)
        if return_carries:
            return logits, aux, finals
        return logits, aux


def init_params(config: ModelConfig, seed: int = 0) -> dict:
    """Fresh parameters for ``config`` (Keras initialisers), as a plain nested dict."""
    model = RNNModel(config)
    x = jnp.ones((1, config.in_len), jnp.int32)
    if config.io == "encoder_decoder":
        variables = model.init(jax.random.PRNGKey(seed), x, jnp.ones((1, config.out_len),
                                                                     jnp.int32))
    else:
        variables = model.init(jax.random.PRNGKey(seed), x)
    return jax.tree_util.tree_map(lambda a: a, dict(variables["params"]))


def apply_model(config: ModelConfig, params, x, dec_in=None, **kwargs):
    """``RNNModel(config).apply({"params": params}, x, dec_in, **kwargs)`` (see RNNModel)."""
    return RNNModel(config).apply({"params": params}, x, dec_in, **kwargs)


def greedy_decode(config: ModelConfig, params, src: Array, start_ids: Array, *,
                  decomp=None, module: Optional[int] = None,
                  end_ids: Optional[Array] = None):
    """Greedy decoding as one jit-compiled scan over output steps, for a whole batch.

    The decoder state is carried from step to step (no prefix re-running); a module's masks
    are applied to the matmul inputs and outputs, as in :func:`modjax.compose.module_scores`.

    Args:
      config: an ``encoder_decoder`` config.
      params: model params (the base params of ``decomp``).
      src: ``[N, in_len]`` source ids.
      start_ids: ``[N]`` the first decoder token of each example (``[start_ℓ]``).
      decomp: a :class:`~modjax.decomposition.Decomposition` of this model, or ``None`` (the
        monolithic model). The module's keep vectors, mask semantics (``u_mask``) and head rows
        are read from it.
      module: the module to decode with (an index in ``[0, decomp.num_modules)``); required
        with ``decomp``.
      end_ids: ``[N]`` tokens after which an example only emits padding (0), or ``None``.

    Returns:
      ``[N, out_len]`` int32 generated ids (the tokens after ``start_ids``).
    """
    if config.io != "encoder_decoder":
        raise ValueError(f"greedy_decode needs an encoder_decoder config, got io={config.io!r}")
    src, start_ids, end_ids = validate.decode_inputs(config, src, start_ids, end_ids)
    keep, u_mask, head_rows = None, "paper", "step"
    if decomp is not None:
        from modjax.decomposition import Decomposition, check_module_index

        if not isinstance(decomp, Decomposition):
            raise TypeError(f"decomp must be a modjax Decomposition, got "
                            f"{type(decomp).__name__}")
        if decomp.config != config:
            raise ValueError("decomp must be a decomposition of config's model (its config "
                             "differs)")
        if module is None:
            raise ValueError("module (the module index to decode with) is required with decomp")
        module = check_module_index("module", module, decomp.num_modules)
        keep = decomp.keep[module]
        u_mask, head_rows = decomp.options.u_mask, decomp.options.head_rows
    elif module is not None:
        raise ValueError(f"module={module!r} needs decomp (the decomposition it indexes)")
    keep = _check_keep(keep, config)
    bound = None
    if keep is not None and u_mask == "code" and keep.shape[-1] == config.units and \
            not validate.is_tracer(keep):
        bound = int(jnp.max(jnp.sum(keep < 0.5, axis=-1)))  # static: removed units per step
    ends = jnp.full((src.shape[0],), -1, jnp.int32) if end_ids is None else \
        jnp.asarray(end_ids, jnp.int32)
    return _greedy_scan(params, src, jnp.asarray(start_ids, jnp.int32), ends, keep,
                        config=config, u_mask=u_mask, head_rows=head_rows, bound=bound)


@functools.partial(jax.jit, static_argnames=("config", "u_mask", "head_rows", "bound"))
def _greedy_scan(params, src, start_ids, ends, keep, *, config: ModelConfig, u_mask: str,
                 head_rows: str, bound: Optional[int]):
    """The compiled decoder loop of :func:`greedy_decode`: ``src [N, in_len]``, ``start_ids``
    and ``ends [N]``, ``keep`` ``None``, ``[L, F]`` or ``[L, T, F]`` -> ``[N, out_len]`` ids."""
    model = RNNModel(config)
    variables = {"params": params}
    T = config.out_len
    if keep is not None and keep.ndim == 2:
        keep = jnp.broadcast_to(keep[:, None, :], (config.layers, T, keep.shape[-1]))
    enc = model.apply(variables, src, method=RNNModel.encode)
    N = src.shape[0]
    carries = [enc] + [zero_carry(config.cell_config, N) for _ in range(config.layers - 1)]
    keep_tm = None if keep is None else jnp.swapaxes(keep, 0, 1)  # [T, L, H]
    head = None if keep is None else head_row_keep(keep[config.layers - 1], head_rows)
    if head is not None:
        head = jnp.broadcast_to(head, (T, head.shape[-1]))  # [T, F] head rows per step

    def step(state, xs_t):
        carries, tok, done = state
        k_t, hk_t = (None, None) if xs_t is None else xs_t
        kt = None if k_t is None else k_t[:, None, :]
        hk = None if hk_t is None else hk_t[None, :]
        logits, _, carries = model.apply(variables, tok[:, None], carries, keep=kt,
                                         u_mask=u_mask, return_carries=True,
                                         removed_bound=bound,
                                         head_keep=hk if hk is not None else
                                         (None if kt is None else jnp.ones_like(kt[-1])),
                                         method=RNNModel.decode)
        nxt = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
        nxt = jnp.where(done, 0, nxt)
        done = done | (nxt == ends)
        return (carries, nxt, done), nxt

    init = (carries, start_ids, jnp.zeros((N,), bool))
    if keep_tm is None:
        _, out = jax.lax.scan(lambda s, _x: step(s, None), init, jnp.zeros((T, 0)))
    else:
        _, out = jax.lax.scan(step, init, (keep_tm, head))
    return jnp.swapaxes(out, 0, 1)


def config_for(data, *, cell: str = "lstm", **kwargs) -> ModelConfig:
    """A :class:`ModelConfig` whose sizes come from a :class:`~modjax.data.base.TaskData`.

    ``io``, ``num_classes`` (target vocabulary for encoder-decoder), ``vocab_size``,
    ``in_len`` and ``out_len`` are read from ``data``; encoder-decoder sets ``mask_zero``.
    Other fields (``layers``, ``units``, ``embed_dim``, ``bidirectional``, ``merge``, ...) come
    from ``kwargs``.
    """
    encdec = data.io == "encoder_decoder"
    base = dict(io=data.io, cell=cell,
                num_classes=int(data.target_vocab_size if encdec else data.num_classes),
                vocab_size=int(data.vocab_size), in_len=int(data.in_len),
                out_len=int(data.out_len), mask_zero=encdec)
    base.update(kwargs)
    return ModelConfig(**base)
