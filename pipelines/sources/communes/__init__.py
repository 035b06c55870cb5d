"""Source communes: commune contours (``communes/`` or ``sig_ville/``), outlines of the maps."""
