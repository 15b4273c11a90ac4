"""Float64 NumPy implementations of the cell equations, written independently for the tests."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def act(name):
    return {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "sigmoid": sigmoid,
            "hard_sigmoid": hard_sigmoid}[name]


def step(cell, p, h, c, x, activation="tanh", gate="sigmoid", reset_after=False, W=None, U=None,
         B=None):
    """One step in float64. ``W, U, B`` override the params (dense masked matrices)."""
    W = np.asarray(p["kernel"], np.float64) if W is None else W
    U = np.asarray(p["recurrent_kernel"], np.float64) if U is None else U
    B = np.asarray(p["bias"], np.float64) if B is None else B
    H = U.shape[0]
    f_act, f_gate = act(activation), act(gate)
    if cell == "simple":
        return f_act(x @ W + h @ U + B), None
    if cell == "lstm":
        z = x @ W + h @ U + B
        i, f, cc, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        c_new = f_gate(f) * c + f_gate(i) * f_act(cc)
        return f_gate(o) * f_act(c_new), c_new
    if reset_after:
        bx, bh = B[0], B[1]
        xz = x @ W + bx
        hz = h @ U + bh
        z = f_gate(xz[:, :H] + hz[:, :H])
        r = f_gate(xz[:, H:2 * H] + hz[:, H:2 * H])
        cand = f_act(xz[:, 2 * H:] + r * hz[:, 2 * H:])
    else:
        xz = x @ W + B
        z = f_gate(xz[:, :H] + h @ U[:, :H])
        r = f_gate(xz[:, H:2 * H] + h @ U[:, H:2 * H])
        cand = f_act(xz[:, 2 * H:] + (r * h) @ U[:, 2 * H:])
    return z * h + (1 - z) * cand, None


def run(cell, p, xs, h0=None, c0=None, pad=None, reverse=False, **kw):
    """Loop over steps; returns hs [N, T, H] and the final (h, c)."""
    N, T, _ = xs.shape
    H = np.asarray(p["recurrent_kernel"]).shape[0] if "U" not in kw or kw["U"] is None else kw["U"].shape[0]
    h = np.zeros((N, H)) if h0 is None else np.asarray(h0, np.float64)
    c = np.zeros((N, H)) if c0 is None else np.asarray(c0, np.float64)
    hs = np.zeros((N, T, H))
    order = range(T - 1, -1, -1) if reverse else range(T)
    for t in order:
        hn, cn = step(cell, p, h, c, np.asarray(xs[:, t], np.float64), **kw)
        if pad is not None:
            m = pad[:, t][:, None]
            hn = np.where(m, hn, h)
            if cn is not None:
                cn = np.where(m, cn, c)
        h, c = hn, (cn if cn is not None else c)
        hs[:, t] = h
    return hs, h, c


def float64_params(cfg, seed=0):
    """Float64 NumPy params of ``cfg`` for reference tests: the Keras init with kernels scaled
    by 1.5 and non-zero random biases (seeded), so every weight matters."""
    import jax

    from modjax.models import init_params

    rng = np.random.default_rng(seed)
    with jax.enable_x64(False):
        base = init_params(cfg, seed)
    out = {}
    for name, leaves in base.items():
        out[name] = {}
        for k, v in leaves.items():
            v = np.asarray(v, np.float64)
            if k == "bias":
                v = rng.normal(0.0, 0.5, v.shape)
            elif k in ("kernel", "recurrent_kernel"):
                v = v * 1.5
            out[name][k] = v
    return out
