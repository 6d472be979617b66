"""The experiment runner: config -> design -> run cells (serial, local processes, Dask) -> store.

``workbench run CONFIG`` is the command-line face (:mod:`workbench.cli`); from Python::

    from workbench.experiment.config import load_config
    from workbench.experiment.design import build_design
    from workbench.experiment.tables import load_table

    spec = load_config("experiments/quickstart.toml", ["data.n=500"])
    cells = build_design(spec)                 # content-hashed cells and seeds
    table = load_table("reports/quickstart")   # tidy: one row per fit

The package imports none of its modules, so that reading a config loads only the config stage.
"""
