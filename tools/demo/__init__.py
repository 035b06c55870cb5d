"""The demo of ``make run``: the committed real extract (``data/demo/``) and the FICTITIOUS suivi
files written by :mod:`tools.demo.synthetic`. ``python -m tools.demo --help``."""
