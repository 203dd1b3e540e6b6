"""Estimator options that are cell axes: one :class:`~gradvar.model.registry.Option` each.

An estimator that reads an option lists its name in ``options`` and reads its value in the
kernel as ``opts[INDEX]`` with the index returned here.
"""

from gradvar.model.registry import Option, register_option

TAU = register_option(
    Option(
        "tau",
        0.5,
        "Temperature of the relaxed and straight-through estimators (> 0)",
    )
)

ETA = register_option(
    Option(
        "eta",
        1.0,
        "Control-variate scale of REBAR (any real; 0 turns the control variate off)",
        positive=False,
    )
)

RAO_SAMPLES = register_option(
    Option(
        "rao_samples",
        10,
        "Conditional Gumbel draws K' inside one gumbel-rao estimate (integer, 1 to 100,000)",
        integer=True,
        maximum=10**5,  # K' K draws per estimate: 1e5 x 10 classes is 1e6 per estimate
    )
)
