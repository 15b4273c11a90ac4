"""modjax: decompose trained recurrent neural networks into reusable, replaceable modules.

The pipeline: ``decompose`` (trace → concern → keep vectors) → ``masks_for`` / ``apply_masks``
→ ``compose`` (all modules in one batched scan, vote) → ``metrics``; ``compose_modules``
votes with modules taken from different models (reuse, replacement). ``compact`` turns a module
into a smaller ordinary model; ``minimal_modules`` finds the smallest modules within a
validation cost.
"""
from modjax import bleu, decision, metrics, sharding, translation
from modjax.cells import CELL_TABLE, CellConfig, GRUCell, LSTMCell, RNNCell, SimpleRNNCell
from modjax.checkpoint import load_model, save_model
from modjax.compact import compact
from modjax.compose import (apply_masks, channel_score, compose, concatenate, module_scores,
                            replace, select, vote)
from modjax.decompose import decompose, trace
from modjax.decomposition import Decomposition, DecomposeOptions
from modjax.layers import RNN, scan_directions, scan_layer
from modjax.masks import all_masks, masks_for
from modjax.minimal import MinimalModules, minimal_modules
from modjax.models import (ModelConfig, RNNModel, apply_model, config_for, greedy_decode,
                           init_params)
from modjax.presets import PRESETS, artifact_max_remove, decompose_options
from modjax.reuse import ModuleRef, compose_modules, module_set_scores, modules_of, replacement
from modjax.train import fit, predict

__version__ = "0.1.0"

__all__ = [
    "CELL_TABLE", "CellConfig", "GRUCell", "LSTMCell", "RNNCell", "SimpleRNNCell", "RNN",
    "scan_layer", "ModelConfig", "RNNModel", "apply_model", "config_for", "greedy_decode",
    "init_params", "fit", "predict", "save_model", "load_model", "decompose", "trace",
    "Decomposition", "DecomposeOptions", "PRESETS", "decompose_options", "artifact_max_remove",
    "masks_for", "all_masks",
    "apply_masks", "module_scores", "compose", "vote", "channel_score", "select", "replace",
    "concatenate", "metrics", "decision", "ModuleRef", "modules_of", "replacement",
    "module_set_scores", "compose_modules", "compact", "minimal_modules", "MinimalModules",
    "scan_directions",
]
__all__ += ["bleu", "translation", "sharding"]
