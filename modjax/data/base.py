"""The one structure every modjax dataset loader returns."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

IO_TYPES = ("one_to_one", "many_to_one", "one_to_many", "many_to_many", "encoder_decoder")


def default_data_dir() -> str:
    """Folder with the real datasets: ``$MODJAX_DATA`` if set, else ``../shared/data``.

    The relative default is resolved against the current working directory first and
    then against the folder that holds the ``modjax`` package checkout.
    """
    env = os.environ.get("MODJAX_DATA")
    if env:
        return env
    here = os.path.abspath(os.path.join(os.getcwd(), "..", "shared", "data"))
    if os.path.isdir(here):
        return here
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.abspath(os.path.join(pkg_root, "..", "shared", "data"))


@dataclasses.dataclass(frozen=True)
class TaskData:
    """A dataset ready for the models and for :func:`modjax.decompose`.

    Shapes (``N`` examples, ``T_in`` input steps, ``T_out`` output steps):

    * ``x_train``/``x_test``: int32 ``[N, T_in]`` token ids, 0 = padding.
    * ``y_train``/``y_test``: int32 ``[N]`` (one-output) or ``[N, T_out]`` (many-output and
      encoder-decoder: target token ids shifted by one, the decoder's labels).
    * ``decoder_input_train``/``decoder_input_test`` (encoder-decoder only): int32 ``[N, T_out]``.
    * ``concern_train``/``concern_test`` (encoder-decoder only): int32 ``[N]``, the target
      language index of each pair (what a module is decomposed for).
    * ``class_names``: names of the output classes (target languages for encoder-decoder).
    * ``vocab``: word -> id of the input tokenizer (``None`` for synthetic data without words).
    * ``target_vocab``: word -> id of the decoder side (encoder-decoder only).
    * ``vocab_size``: Embedding input size (largest id + 1); ``target_vocab_size`` likewise.
    * ``target_standardize`` (encoder-decoder only): the name of the standardisation the
      decoder side's texts went through (:data:`modjax.data.tokenizer.STANDARDIZATIONS`), so
      that references can be compared with decoded words in the same form; ``None`` when the
      targets were not standardised (or come from ids).
    """

    name: str
    io: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    vocab_size: int
    in_len: int
    out_len: int
    vocab: Optional[dict] = None
    decoder_input_train: Optional[np.ndarray] = None
    decoder_input_test: Optional[np.ndarray] = None
    concern_train: Optional[np.ndarray] = None
    concern_test: Optional[np.ndarray] = None
    target_vocab: Optional[dict] = None
    target_vocab_size: Optional[int] = None
    notes: str = ""
    target_standardize: Optional[str] = None

    def __post_init__(self):
        if self.io not in IO_TYPES:
            raise ValueError(f"io must be one of {IO_TYPES}, got {self.io!r}")
        if self.target_standardize is not None:
            from modjax.data.tokenizer import STANDARDIZATIONS

            if self.target_standardize not in STANDARDIZATIONS:
                raise ValueError(f"target_standardize must be None or one of "
                                 f"{sorted(STANDARDIZATIONS)}, got {self.target_standardize!r}")

    @property
    def num_classes(self) -> int:
        """Number of output classes (or target languages)."""
        return len(self.class_names)
