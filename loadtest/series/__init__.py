"""Runs in series: the load levels of ``sweep`` and ``capacity``, the prefill/decode scenarios of
``tokens`` and the engine x model pairs of ``matrix``. Each step is an ordinary run (run/)."""
