"""Saving and loading fitted rankers without pickle.

``save`` writes one safetensors file: the adapter's tensors, plus JSON metadata
(format version, parameters, target scaling, history, backbone spec). Loading
it parses JSON and raw tensor bytes only, so an untrusted file cannot run code,
and checks the whole file against the schema (:mod:`skrank.persistence._schema`)
before it allocates anything. The frozen backbone is not stored: it is rebuilt
from its spec on first use.

Pickles (``pickle``, ``joblib.dump``) of a ranker also work and are small (no
backbone inside), but loading a pickle executes code: only load pickles from
sources you trust. How a ranker pickles is :mod:`skrank.persistence._pickling`'s.

The command line writes and reads its files through :func:`save_with_cli` and
:func:`load_with_cli`, which add an optional ``cli`` record (the target or winner
column's name) to the same format; :func:`save` and :func:`load` are those
without it.

Inside: ``_io`` (save and load), ``_metadata`` (the file's metadata, and the
check ``fit`` runs so that it never trains what ``save`` could not write),
``_schema`` with ``_schema_json``, ``_schema_tensors`` and ``_schema_compat``
(what a file may hold, and the rules for files of earlier versions), and
``_pickling``. The public face is the package's, ``skrank.save`` and
``skrank.load``; this ``__init__`` imports nothing, because the estimator
imports ``_pickling`` and ``_metadata`` while ``_io`` imports the estimator (to
build one on load): the modules form no cycle, and importing one of them never
runs another first.
"""
