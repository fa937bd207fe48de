"""The `chainrule` command: train a multi-layer perceptron on a table, then evaluate or predict.

    chainrule train --data digits
    chainrule evaluate runs/digits --data digits --split test
    chainrule predict runs/digits --data new_rows.csv --output predictions.csv
    chainrule graph two_layer.py -o two_layer.svg   # the graph of a script's loss

The command is a thin layer over the library: `chainrule.data.load` reads the data (and
`split_indices` / `Standardizer` split and scale it), `chainrule.nn` builds the model,
`chainrule.train.fit` / `evaluate` / `predict` run it, `chainrule.viz` draws graphs. What is
here is the glue, one module per concern:

    main.py      the parser and `main` (errors become one line on stderr, exit status 2)
    errors.py    CommandError
    args.py      option types and shared options (--data, --missing)
    train.py     `chainrule train`         evaluate.py / predict.py / graph.py: the others
    tables.py    reading the data for a command
    model.py     the MLP, loss, optimizer and metrics of a run
    config.py    a run's config.json: reading and checking it
    rundir.py    the run directory on disk: staging, --overwrite, cleaning up after a kill

The package imports the library; nothing in the library imports it.
"""

from .errors import CommandError
from .main import build_parser, main

__all__ = ["main", "build_parser", "CommandError"]
