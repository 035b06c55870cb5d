"""Source sig_ville: official QPV contours (geometry by geo.contours) and list of QPV."""
