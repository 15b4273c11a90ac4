"""The paper's five datasets as :class:`TaskData`, and Keras-compatible text preprocessing.

================  =========  ======================  ==========================  ===========================================================
name              io         loader                  local files (``$MODJAX_DATA``)  hub id (``source="hf"``)
================  =========  ======================  ==========================  ===========================================================
``"mathqa"``      1:1        :func:`load_mathqa`     ``mathqa/`` (json)          ``allenai/math_qa``
``"clinc"``       M:1        :func:`load_clinc`      ``clinc/`` (csv)            ``clinc/clinc_oos`` (config ``plus``)
``"toxic"``       1:N        :func:`load_toxic`      ``toxicity/`` (csv)         ``thesofakillers/jigsaw-toxic-comment-classification-challenge``
``"brown"``       M:N        :func:`load_brown`      ``brown/`` (text)           ``nltk/brown``
``"tatoeba"``     enc-dec    :func:`load_tatoeba`    ``tatoeba/`` (text)         ``Helsinki-NLP/tatoeba_mt`` (``eng-fra``, ``deu-eng``, ``eng-ita``)
================  =========  ======================  ==========================  ===========================================================

Every loader takes ``source="local"`` (files under ``path``, default :func:`default_data_dir`),
``"hf"`` (the hub id above) or ``"synthetic"`` (``modjax.data.synthetic.load_synthetic``).
Both real sources go through ``datasets``: local files with ``load_dataset("json" | "csv" |
"text", data_files=...)`` (:func:`modjax.data.text.load_files`), the hub with
``load_dataset(hub_id)``; the columns are then read by the same code. MathQA and toxic also take
``hf_data_files=`` (with ``hf_repo="json"`` / ``"csv"``): files by URL (``hf://datasets/...``,
``https://``, ``file://``) in the local layout. The CLINC ``layout="json"`` variant
(``data_full.json``) is read with the ``json`` module: its records are lists, not objects.
"""
from typing import Optional

from modjax.data.base import TaskData, default_data_dir
from modjax.data.brown import load_brown
from modjax.data.clinc import load_clinc
from modjax.data.mathqa import load_mathqa
from modjax.data.shared_vocab import load_clinc_brown_shared, load_mathqa_toxic_shared
from modjax.data.tatoeba import load_tatoeba, load_tatoeba_motivating
from modjax.data.tokenizer import TextVectorization, Tokenizer, pad_sequences
from modjax.data.toxic import load_toxic

LOADERS = {"mathqa": load_mathqa, "clinc": load_clinc, "toxic": load_toxic, "brown": load_brown,
           "tatoeba": load_tatoeba}
IO_OF = {"mathqa": "one_to_one", "clinc": "many_to_one", "toxic": "one_to_many", "brown": "many_to_many",
         "tatoeba": "encoder_decoder"}


def load_dataset(name: str, source: str = "local", *, cache_dir: Optional[str] = None,
                 **kwargs) -> TaskData:
    """Load a dataset by name (``"mathqa"``, ``"toxic"``, ``"clinc"``, ``"brown"``, ``"tatoeba"``).

    ``kwargs`` go to the loader (e.g. ``path=``, ``max_len=``). Returns :class:`TaskData`.

    Local loads (``source="local"``) are cached on disk after the first one, keyed by the
    source files' SHA-256, the options and the preprocessing version
    (:mod:`modjax.data.cache`): ``cache_dir`` (default ``$MODJAX_DATA_CACHE``, else
    ``~/.cache/modjax/data``; the variable set to ``none`` turns the cache off).
    """
    if name not in LOADERS:
        raise ValueError(f"name must be one of {tuple(LOADERS)}, got {name!r}")
    if source != "local":
        return LOADERS[name](source=source, **kwargs)
    from modjax.data.cache import cached_dataset

    opts = {k: v for k, v in kwargs.items() if k != "path"}
    return cached_dataset(name, kwargs.get("path"), opts,
                          lambda: LOADERS[name](source=source, **kwargs), cache_dir=cache_dir)


def load_synthetic(io: str, **kwargs):
    """``modjax.data.synthetic.load_synthetic`` (imported lazily)."""
    from modjax.data.synthetic import load_synthetic as _load

    return _load(io, **kwargs)


__all__ = ["TaskData", "default_data_dir", "load_dataset", "load_synthetic", "load_mathqa", "load_clinc",
           "load_toxic", "load_brown", "load_tatoeba", "load_tatoeba_motivating", "load_mathqa_toxic_shared",
           "load_clinc_brown_shared", "Tokenizer", "TextVectorization", "pad_sequences", "LOADERS", "IO_OF"]
