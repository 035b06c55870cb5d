"""Geocoded places (``data/raw/lieux/``): reading the files (:mod:`.reader`) and the asset
``raw/lieux`` assigning them to the QPV (:mod:`.assets`, rule in :mod:`geo.points`)."""
