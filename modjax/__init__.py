"""modjax: decompose trained recurrent neural networks into reusable, replaceable modules."""
from modjax.cells import CELL_TABLE, CellConfig, GRUCell, LSTMCell, RNNCell, SimpleRNNCell
from modjax.layers import RNN, scan_layer
from modjax.models import ModelConfig, RNNModel, apply_model, greedy_decode, init_params

__version__ = "0.1.0"
