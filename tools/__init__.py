"""Maintainers' tools: the fictitious demo generator and the demo's real-data extract, the
warehouse comparison script. Not part of the shipped package (``pipelines``, ``geo``)."""
